import type pg from 'pg';
import type { ApplyError } from '../../../plugin/ports/apply-error.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { captureOffHere, runCapturedDdl } from './captured-ddl.js';
import type { ChangeSendContext } from './change-sender.js';
import { requireMigrationCommitted } from './migration-marker.js';

/** What a packet's control messages need of the replica target applying it. */
export interface ControlMessageTarget {
  readonly node: string;
  readonly stream: string;
  readonly runsCapturedDdl: boolean;
  note(message: string, fields: Record<string, unknown>): void;
  /** Waits for what was sent before the message: its errors are reported first. */
  settle(): Promise<void>;
  /** The replica's latest copy (captured-ddl.ts, `schemaPoint`). */
  schemaPoint(): Lsn | null;
  refreshSynced(version: number): Promise<void>;
  explain(error: unknown, version: number): ApplyError;
}

/** The control messages of a packet at `version`, committed on the primary at `lsn`, on `client`'s open transaction. */
export function controlMessages(
  target: ControlMessageTarget,
  client: pg.Client,
  version: number,
  lsn: Lsn,
): Pick<ChangeSendContext, 'runDdl' | 'checkMigration'> {
  const explain = (error: unknown) => target.explain(error, version);
  return {
    /** Captured DDL at its place in the stream. */
    async runDdl(content) {
      await target.settle();
      if (!target.runsCapturedDdl) throw captureOffHere(target.node, version);
      const schemaPoint = target.schemaPoint();
      const place = {
        node: target.node,
        stream: target.stream,
        version,
        lsn,
        schemaPoint,
        explain,
      };
      if ((await runCapturedDdl(client, content, place)) === 'ran') {
        await target.refreshSynced(version);
        return;
      }
      target.note('captured DDL before the copy: not run', {
        replica: target.node,
        version,
        lsn,
        copiedAt: schemaPoint,
        event: 'ddl-in-copy',
      });
    },
    /** A migration's marker, in the transaction that moves the position past it. */
    async checkMigration(gid) {
      await target.settle();
      const place = { node: target.node, version, lsn, schemaPoint: target.schemaPoint(), explain };
      await requireMigrationCommitted(client, gid, place);
    },
  };
}
