import type {
  DeleteChange,
  InsertChange,
  Lsn,
  Relation,
  TruncateChange,
  UpdateChange,
} from '../protocol/index.js';

/**
 * pgoutput messages as the replication source hands them to the primary side,
 * with relations already resolved and values in text form. This is the port
 * between the Postgres adapter and the packet assembler. Row changes and
 * truncates are already the packet's {@link InsertChange} etc.: the assembler
 * passes them on without copying.
 */
export type DecodedMessage =
  | {
      readonly kind: 'begin';
      /** The transaction's final LSN (its commit record). */
      readonly finalLsn: Lsn;
      /** Commit time on the primary, microseconds since the Unix epoch (formatted only when read). */
      readonly commitMicros: number;
      readonly xid: number;
    }
  | { readonly kind: 'relation'; readonly relation: Relation }
  | InsertChange
  | UpdateChange
  | DeleteChange
  | TruncateChange
  | {
      readonly kind: 'message';
      readonly transactional: boolean;
      readonly prefix: string;
      readonly content: string;
    }
  | { readonly kind: 'commit' };
