import type { Lsn, Relation, Row, Value } from '../protocol/index.js';

/**
 * pgoutput messages as the replication source hands them to the primary side,
 * with relations already resolved and values in text form. This is the port
 * between the Postgres adapter and the packet assembler.
 */
export type DecodedMessage =
  | {
      readonly tag: 'begin';
      /** The transaction's final LSN (its commit record). */
      readonly finalLsn: Lsn;
      /** Commit time on the primary, microseconds since the Unix epoch (formatted only when read). */
      readonly commitMicros: number;
      readonly xid: number;
    }
  | { readonly tag: 'relation'; readonly relation: Relation }
  | { readonly tag: 'insert'; readonly relation: Relation; readonly row: Row }
  | {
      readonly tag: 'update';
      readonly relation: Relation;
      readonly key: readonly Value[] | null;
      readonly row: Row;
    }
  | { readonly tag: 'delete'; readonly relation: Relation; readonly key: readonly Value[] }
  | {
      readonly tag: 'truncate';
      readonly relations: readonly Relation[];
      readonly cascade: boolean;
      readonly restartIdentity: boolean;
    }
  | {
      readonly tag: 'message';
      readonly transactional: boolean;
      readonly prefix: string;
      readonly content: string;
    }
  | { readonly tag: 'commit' };
