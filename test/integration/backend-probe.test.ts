import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { lookAtBackend, probeBackend } from '../../adapters/postgres/connection/backend-probe.js';
import { eventually } from '../support/compare-nodes.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 0 });

describe('probeBackend', () => {
  it('does not give a backend up when the server refuses the probe with an error of its own', async () => {
    const { primary } = clusters;
    const [{ pid }] = (await primary.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [
      { pid: number },
    ];
    // The server answers (3D000: no such database): alive, so the watched statement goes on.
    const refused = primary.urlFor({ database: 'no_such_database' });
    expect(await probeBackend({ url: refused, pid, boundMs: 5_000 })).toBeNull();
  });

  it('gives it up when nothing answers within the bound (a port that accepts and stays silent)', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      expect(await probeBackend({ url, pid: 1, boundMs: 500 })).toBe('did not answer');
    } finally {
      silent.close();
    }
  });

  it('for an apply session, takes a statement asleep for no work and a refused probe for no answer', async () => {
    const { primary } = clusters;
    const sleeping = primary.query(`SELECT pg_sleep(3) /* asleep */`);
    let pid = 0;
    await eventually(async () => {
      const rows = await primary.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE query LIKE '%/* asleep */' AND wait_event = 'PgSleep'`,
      );
      pid = rows[0]?.pid ?? 0;
      return pid > 0;
    }, 'a backend in pg_sleep');
    const probe = { url: primary.url, pid, boundMs: 5_000 };
    // Active for pg_stat_activity, so attach's watch lets it be; the apply deadline does not.
    expect(await probeBackend(probe)).toBeNull();
    expect(await lookAtBackend({ ...probe, onlyOwnWork: true })).toEqual({
      reason: 'was not working',
      waitEvent: 'Timeout:PgSleep',
    });
    const refused = primary.urlFor({ database: 'no_such_database' });
    expect((await lookAtBackend({ ...probe, url: refused, onlyOwnWork: true })).reason).toBe(
      'did not answer',
    );
    await sleeping;
  });
});
