import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';

/**
 * Control events are only as trustworthy as whoever owns the schema and the
 * table they are written to: a role that created schema `lockstep` before
 * attach (it may create schemas in the database) could replace the table and
 * forge events. Owners must be the role lockstep runs as, or a superuser.
 */
export async function requireTrustedOwners(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ what: string; owner: string }>(
    `SELECT 'schema lockstep' AS what, n.nspowner::regrole::text AS owner
       FROM pg_namespace n WHERE n.nspname = 'lockstep'
     UNION ALL
     SELECT 'table lockstep.control_events', c.relowner::regrole::text
       FROM pg_class c WHERE c.oid = to_regclass('lockstep.control_events')
     UNION ALL
     SELECT 'function lockstep.capture_ddl()', p.proowner::regrole::text
       FROM pg_proc p WHERE p.oid = to_regprocedure('lockstep.capture_ddl()')`,
  );
  const { rows: trusted } = await client.query<{ rolname: string }>(
    'SELECT rolname FROM pg_roles WHERE rolname = current_user OR rolsuper',
  );
  const ok = new Set(trusted.map((r) => r.rolname));
  const untrusted = rows.find((r) => !ok.has(r.owner.replace(/^"|"$/g, '')));
  if (untrusted) {
    throw new LockstepError({
      node: 'primary',
      setting: 'control schema',
      problem: `${untrusted.what} is owned by role ${untrusted.owner}, neither lockstep's role nor a superuser: that role could forge control events`,
      fix: `as a superuser, give it to lockstep's role (ALTER ... OWNER TO) or drop schema lockstep and run lockstep attach again; check what else that role created in schema lockstep`,
    });
  }
}
