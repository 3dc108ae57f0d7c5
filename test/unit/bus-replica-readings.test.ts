import { describe, expect, it } from 'vitest';
import { readBusReplicaLag } from '../../plugin/cli/bus-replica-readings.js';
import type { LockstepStatus, ReplicaStatus } from '../../plugin/status/read-status.js';

/** Not reported, and no lag at all: never as caught up as last seen. */
const blank = { version: null, lagVersions: null, lagBytes: null, lagSeconds: null };
const unreported = (name: string) => ({ name, ...blank, reachable: false });

describe("the bus publisher's reading of the replicas' lag", () => {
  it('takes each replica as status read it', async () => {
    const eu = { name: 'eu', version: 7, lagVersions: 2, lagBytes: 64, lagSeconds: null };
    const status = { replicas: [{ ...eu, reachable: true, state: 'streaming' } as ReplicaStatus] };
    const read = await readBusReplicaLag(async () => status as LockstepStatus, ['eu']);
    expect(read).toEqual([{ ...eu, reachable: true }]);
  });

  it('makes every replica unreported when the read never answers', async () => {
    const never = new Promise<LockstepStatus>(() => undefined);
    expect(await readBusReplicaLag(() => never, ['eu', 'us'], 1)).toEqual([
      unreported('eu'),
      unreported('us'),
    ]);
  });

  it('makes every replica unreported when the read fails', async () => {
    const failing = () => Promise.reject(new Error('no bus'));
    expect(await readBusReplicaLag(failing, ['eu'])).toEqual([unreported('eu')]);
  });
});
