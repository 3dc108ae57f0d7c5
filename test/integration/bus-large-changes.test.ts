import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { PUBLISH_LIMITS } from '../../plugin/sidecar/publish-window.js';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import {
  type BusPacketMessage,
  expectContiguous,
  readBusMessages,
} from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// The server's default max_payload (1 MB): every value below takes several messages.
const nats = useNatsCluster();
const STREAM = 'LOCKSTEP_LOCKSTEP';
const clusters = useAttached({
  replicas: 1,
  schema: `
    CREATE TABLE big (id int PRIMARY KEY, b bytea, t text, note text);
    CREATE TABLE small (id int PRIMARY KEY, v text);
    CREATE TABLE marker (id bigserial PRIMARY KEY);`,
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const MIB = 1024 * 1024;
/** About `mb` MB of bytea holding every byte value (twice that as hex on the stream). */
const bytes = (mb: number) =>
  `decode(repeat((SELECT string_agg(lpad(to_hex(i), 2, '0'), '') FROM generate_series(0, 255) i), ${mb * 4096}), 'hex')`;
/** About `mb` MB of text with multi-byte characters: a fragment may end inside one. */
const text = (mb: number, salt: string) =>
  `repeat('${salt}é€😀 x', ${Math.round((mb * MIB) / 13)})`;

/** What a node holds, large values by md5. */
async function digest(node: PostgresCluster): Promise<unknown[]> {
  return node.query(`
    SELECT 'big' AS tab, id, md5(b) AS b, length(b) AS bl, md5(t) AS t, length(t) AS tl, note FROM big
    UNION ALL SELECT 'small', id, NULL, NULL, md5(v), NULL, NULL FROM small
    ORDER BY 1, 2`);
}

const agent = () => startAgent(clusters.configFile, 'replica1');
const publisher = (env: NodeJS.ProcessEnv = {}) =>
  new LockstepProcess(['run', '--config', clusters.configFile], env);

async function stopped(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

async function expectReplicaIdentical(): Promise<void> {
  await waitForMarker(clusters.primary, clusters.replicas, 240_000);
  const expected = await digest(clusters.primary);
  expect(await digest(clusters.replicas[0] as PostgresCluster)).toEqual(expected);
}

/** Checks each change's fragments on the bus follow each other byte for byte, each once. */
function expectFragmentsOnce(messages: readonly BusPacketMessage[]): number {
  let changes = 0;
  let end = 0;
  for (const { fragment } of messages) {
    if (!fragment) {
      expect(end).toBe(0);
      continue;
    }
    expect({ offset: fragment.offset }).toEqual({ offset: end });
    end = fragment.offset + fragment.bytes.length;
    if (end === fragment.total) {
      changes++;
      end = 0;
    }
  }
  expect(end).toBe(0);
  return changes;
}

describe('changes larger than a bus message', () => {
  it('replicate in fragments: 3 MB and 20 MB values, their updates, and a packet mixing big and small', async () => {
    const run = publisher();
    const applier = agent();
    const { primary } = clusters;
    try {
      await primary.query(`INSERT INTO big VALUES (1, ${bytes(3)}, ${text(3, 'a')}, 'one')`);
      await primary.query(`INSERT INTO big VALUES (2, ${bytes(20)}, NULL, 'two')`);
      await primary.query(`INSERT INTO big VALUES (3, NULL, ${text(20, 'c')}, 'three')`);
      // A new large value next to an unchanged TOAST one, and both changed.
      await primary.query(`UPDATE big SET t = ${text(3, 'd')} WHERE id = 1`);
      await primary.query(`UPDATE big SET b = ${bytes(3)}, t = ${text(4, 'e')} WHERE id = 2`);
      await primary.query(`BEGIN;
        INSERT INTO small SELECT g, 'before ' || g FROM generate_series(1, 500) g;
        INSERT INTO big VALUES (4, ${bytes(5)}, ${text(2, 'f')}, 'four');
        INSERT INTO small SELECT g, 'after ' || g FROM generate_series(501, 1000) g;
        UPDATE big SET note = 'noted' WHERE id = 3;
        INSERT INTO big VALUES (5, ${bytes(1)}, NULL, 'five');
        COMMIT`);
      await expectReplicaIdentical();
      const messages = await readBusMessages(nats.cluster.url, STREAM);
      expectContiguous(messages, 'small');
      // Every large change went in fragments, each fragment once and under the limit.
      expect(expectFragmentsOnce(messages)).toBeGreaterThanOrEqual(7);
    } finally {
      await stopped(applier);
      await stopped(run);
    }
  });

  it('a publisher SIGKILLed inside a big change goes on at the byte it stopped at; a restarted agent reads the packet again', async () => {
    const { primary } = clusters;
    const before = (await readBusMessages(nats.cluster.url, STREAM)).length;
    await primary.query(`INSERT INTO big VALUES (6, ${bytes(2)}, ${text(20, 'g')}, 'six')`);
    // The agent joins the first fragments, then stops inside the change with the publisher.
    const first = agent();
    const faulty = publisher({ LOCKSTEP_FAULT: 'mid-change:5' });
    expect(await faulty.exited).toBe(null); // SIGKILLed itself
    const stored = await readBusMessages(nats.cluster.url, STREAM);
    const last = stored.at(-1);
    expect(stored.length).toBeGreaterThan(before + 5);
    // The bus ends inside the change.
    expect(last?.fragment).not.toBeNull();
    expect((last?.fragment?.offset ?? 0) + (last?.fragment?.bytes.length ?? 0)).toBeLessThan(
      last?.fragment?.total ?? 0,
    );
    first.kill('SIGKILL');
    await first.exited;
    const run = publisher();
    const applier = agent();
    try {
      await eventually(async () => !!run.logEvent('bus-publishing'), 'publishing');
      // It goes on where the bus ends: at the last fragment read above, or later when one in flight at the
      // kill was stored after it (nothing is sent twice: no refusal, every fragment once, below).
      const resumed = Number(run.logEvent('bus-publishing')?.sequence);
      expect(resumed).toBeGreaterThanOrEqual(last?.sequence ?? Number.POSITIVE_INFINITY);
      expect(resumed).toBeLessThan((last?.sequence ?? 0) + PUBLISH_LIMITS.messages);
      await primary.query(`UPDATE big SET note = 'six again' WHERE id = 6`);
      await expectReplicaIdentical();
      const messages = await readBusMessages(nats.cluster.url, STREAM);
      expectContiguous(messages, 'small');
      expectFragmentsOnce(messages);
      expect(run.events('bus-refused')).toEqual([]);
    } finally {
      await stopped(applier);
      await stopped(run);
    }
  });
});
