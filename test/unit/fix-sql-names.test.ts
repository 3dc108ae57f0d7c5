import { describe, expect, it } from 'vitest';
import { PRIMARY_FIXES } from '../../adapters/postgres/setup/primary-prerequisites.js';
import { checkNodeSettings } from '../../plugin/attach/doctor-settings.js';
import { compareTable } from '../../plugin/attach/table-compatibility.js';
import type { CatalogTable } from '../../plugin/ports/catalog-table.js';
import type { NodeSession } from '../../plugin/ports/lockstep-cluster.js';
import { sqlName, sqlQualifiedName } from '../../plugin/protocol/sql-name.js';

const ODD = 'x" SUPERUSER; --';
const QUOTED = '"x"" SUPERUSER; --"';

const table = (columns: CatalogTable['columns']): CatalogTable => ({
  schema: 'public',
  name: 't',
  replicaIdentity: 'd',
  hasPrimaryKey: true,
  primaryKey: ['id'],
  columns,
});

describe('names in the SQL a fix suggests', () => {
  it('double embedded quotes', () => {
    expect(sqlName('Order')).toBe('"Order"');
    expect(sqlName(ODD)).toBe(QUOTED);
    expect(sqlQualifiedName('a"b', 'c')).toBe('"a""b"."c"');
  });

  it('in ALTER ROLE … REPLICATION', () => {
    expect(PRIMARY_FIXES.replication(ODD)).toBe(
      `as a superuser run: ALTER ROLE ${QUOTED} REPLICATION`,
    );
  });

  it('in ALTER ROLE … SET idle_session_timeout', async () => {
    const session = {
      serverSettings: async () =>
        new Map([
          ['max_prepared_transactions', '10'],
          ['idle_session_timeout', '60000'],
        ]),
      currentRole: async () => ODD,
    } as unknown as NodeSession;
    const { warnings } = await checkNodeSettings(session, 'eu', { primary: false, maxLagBytes: 0 });
    expect(warnings.map((w) => w.fix)).toEqual([
      `exempt lockstep's role only: ALTER ROLE ${QUOTED} SET idle_session_timeout = 0`,
    ]);
  });

  it('in ADD COLUMN and ALTER COLUMN … TYPE', () => {
    const id = { name: 'id', type: 'integer', notNull: true, hasDefault: false };
    const odd = { name: ODD, type: 'text', notNull: false, hasDefault: false };
    const fixes = (replica: CatalogTable) =>
      compareTable(table([id, odd]), replica).map((m) => m.fix);
    expect(fixes(table([id]))).toEqual([`ALTER TABLE on the replica: ADD COLUMN ${QUOTED} text`]);
    expect(fixes(table([id, { ...odd, type: 'integer' }]))).toEqual([
      `ALTER TABLE on the replica: ALTER COLUMN ${QUOTED} TYPE text`,
    ]);
  });
});
