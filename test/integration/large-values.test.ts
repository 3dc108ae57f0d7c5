import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { waitForMarker } from '../support/compare-nodes.js';
import { withSidecar } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = `
  CREATE TABLE big (id int PRIMARY KEY, b bytea, t text, note text);
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

/** Every byte value, repeated to about `mb` MB (bytea: twice that as hex on the stream). */
const allBytes = (mb: number) =>
  `decode(repeat((SELECT string_agg(lpad(to_hex(i), 2, '0'), '') FROM generate_series(0, 255) i), ${mb * 4096}), 'hex')`;
/** Multi-byte UTF-8 (2, 3 and 4 bytes) and the characters COPY escapes: a read splits them anywhere. */
const utf8Text = (mb: number, salt: string) =>
  `repeat('${salt}é€😀 tab\there\nline\\\\ ', ${Math.round((mb * 1_000_000) / 30)})`;

/** What each node holds, large values by md5. */
async function digest(node: PostgresCluster): Promise<unknown[]> {
  return node.query(
    'SELECT id, md5(b) AS b, length(b) AS bl, md5(t) AS t, length(t) AS tl, note FROM big ORDER BY id',
  );
}

const clusters = useAttached({ replicas: 2, schema: SCHEMA });

describe('large values', () => {
  it('replicates large bytea and text through insert, update with unchanged TOAST, and delete', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary, replicas } = clusters;
      await primary.query(
        `INSERT INTO big VALUES (1, ${allBytes(20)}, ${utf8Text(8, 'a')}, 'first')`,
      );
      // Both large columns unchanged TOAST: the replica must keep them.
      await primary.query(`UPDATE big SET note = 'noted' WHERE id = 1`);
      // A new large value next to an unchanged TOAST one.
      await primary.query(`UPDATE big SET t = ${utf8Text(6, 'b')} WHERE id = 1`);
      // Large and small rows in one transaction, one of them gone by its end.
      await primary.query(`BEGIN;
        INSERT INTO big VALUES (2, ${allBytes(3)}, ${utf8Text(2, 'c')}, 'two'), (3, '\\x00', 'small', 'three');
        INSERT INTO big VALUES (4, NULL, ${utf8Text(3, 'd')}, NULL);
        DELETE FROM big WHERE id = 3;
        UPDATE big SET b = ${allBytes(2)} WHERE id = 1;
        COMMIT`);
      await waitForMarker(primary, replicas);
      const expected = await digest(primary);
      expect(expected).toHaveLength(3);
      for (const replica of replicas) expect(await digest(replica)).toEqual(expected);
      await primary.query('DELETE FROM big WHERE id = 2');
      await waitForMarker(primary, replicas);
      for (const replica of replicas) expect(await digest(replica)).toEqual(await digest(primary));
    });
  });
});
