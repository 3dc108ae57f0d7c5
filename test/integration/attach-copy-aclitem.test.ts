import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { copyFormatFacts } from '../../adapters/postgres/setup/copy-format.js';
import { expectIdentical } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

async function binarySafe(url: string, table: string, columns: readonly string[]) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await copyFormatFacts(client, table, columns)).binarySafe;
  } finally {
    await client.end();
  }
}

describe('a built-in array whose elements have no binary form', () => {
  it('copies aclitem[] as text', async () => {
    const { primary, replicas } = clusters;
    for (const node of [primary, ...replicas])
      await node.query('CREATE TABLE acls (id int PRIMARY KEY, a aclitem[])');
    await primary.query(
      'INSERT INTO acls SELECT 1, relacl FROM pg_class WHERE relacl IS NOT NULL LIMIT 1',
    );
    expect(await binarySafe(primary.url, 'acls', ['id', 'a'])).toBe(false);
    const config = writeConfig(primary, replicas, { tables: ['public.acls'] });
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.code, attached.output).toBe(0);
      await expectIdentical(primary, replicas, ['acls']);
    } finally {
      config.remove();
    }
  });
});
