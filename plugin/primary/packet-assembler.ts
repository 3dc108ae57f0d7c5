import type { DecodedMessage } from '../ports/decoded-message.js';
import {
  type Change,
  compareLsn,
  controlEventChange,
  DDL_MESSAGE,
  isControlEventTable,
  isOpenMessage,
  LOCKSTEP_MESSAGE_PREFIX,
  type Lsn,
  type MessageChange,
  MIGRATION_MARKER,
  microsToIso,
  type PacketHeader,
  type PacketPart,
  type Phase,
  type Relation,
  type ResumePoint,
} from '../protocol/index.js';

/** lockstep's own schema: its changes are never replicated. */
export const CONTROL_SCHEMA = 'lockstep';

/** What the phase policy sees of a whole transaction. */
export interface TransactionEvidence {
  /** Every replicated relation the transaction changed. */
  readonly relations: ReadonlySet<Relation>;
  /** Prefixes of the lockstep messages it emitted, in order. */
  readonly messagePrefixes: readonly string[];
}

/** Decides a packet's phase once its whole transaction has been seen. */
export type PhaseDecider = (evidence: TransactionEvidence) => Phase;

/** Options of the assembler. */
export interface PacketAssemblerOptions {
  /** Resume after this point: transactions committed at or before its LSN are skipped. */
  readonly resume: ResumePoint;
  /** Largest number of changes in one packet part (bounds memory for large transactions). */
  readonly maxPartChanges: number;
  /** Phase policy; every packet is one-phase when omitted. */
  readonly decidePhase?: PhaseDecider;
  /** Whether captured DDL is carried (`twoPhase.captureDdl`); off: DDL events are dropped. */
  readonly captureDdl?: boolean;
  /** Told of each control message or event that is dropped, and why. */
  readonly onIgnored?: (ignored: IgnoredControl) => void;
}

/** A control message or event the assembler dropped. */
export interface IgnoredControl {
  readonly xid: number;
  /** The transaction's commit LSN. */
  readonly lsn: Lsn;
  readonly prefix: string;
  /** `forged`: a logical message only a control event may carry; `capture-off`: DDL while captureDdl is off. */
  readonly reason: 'forged' | 'capture-off';
}

/** The final part's marker per phase (shared: parts are never changed). */
const FINAL: Record<Phase, NonNullable<PacketPart['final']>> = {
  one: Object.freeze({ phase: 'one' }),
  two: Object.freeze({ phase: 'two' }),
};

/** A packet's header; its commit time is formatted only when read (a batch stores only its last packet's). */
class StreamedHeader implements PacketHeader {
  private formatted: string | null = null;

  constructor(
    readonly version: number,
    readonly lsn: Lsn,
    readonly xid: number,
    private readonly commitMicros: number,
  ) {}

  get commitTime(): string {
    this.formatted ??= microsToIso(this.commitMicros);
    return this.formatted;
  }
}

/**
 * Turns decoded pgoutput messages into versioned packet parts. Pure and
 * deterministic: the same WAL from the same resume point yields the same
 * packets with the same versions, which is what makes restarts exact.
 */
export class PacketAssembler {
  private version: number;
  private readonly resumeLsn: string;
  /** A transaction past the resume point was seen: every later one is too (final LSNs only grow). */
  private pastResume = false;
  /** What the open transaction touched, for the phase policy (reused: the policy keeps none of it). */
  private readonly evidence = {
    relations: new Set<Relation>(),
    messagePrefixes: [] as string[],
  };
  private transaction: {
    lsn: Lsn;
    xid: number;
    commitMicros: number;
    skip: boolean;
    emittedHeader: PacketHeader | null;
    nextIndex: number;
    /** The assembler's {@link scratch}: changes not yet in a part. */
    pending: Change[];
    /**
     * A migration run by `lockstep migrate` (its marker comes first): every node
     * applied it in the migration's own round, so its row changes are not sent
     * again; the packet only carries the marker and advances the version.
     */
    migration: boolean;
  } | null = null;
  /**
   * Where a transaction's changes gather, reused: each part gets an exact-size
   * copy. A part's array lives until every replica has applied it, and one
   * grown by push from empty holds room for 17 changes (a pgbench transaction
   * has 4): that slack was copied by the garbage collector like the changes.
   */
  private readonly scratch: Change[] = [];

  constructor(private readonly options: PacketAssemblerOptions) {
    this.version = options.resume.version;
    this.resumeLsn = options.resume.lsn;
    if (!(options.maxPartChanges >= 1)) throw new RangeError('maxPartChanges must be at least 1');
  }

  /** The version of the last packet assembled (or the resume version). */
  get lastVersion(): number {
    return this.version;
  }

  /** True between a transaction's BEGIN and COMMIT. */
  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /** Feeds one message; returns a packet part when one is complete, else `null`. */
  push(message: DecodedMessage): PacketPart | null {
    switch (message.kind) {
      case 'begin':
        if (this.transaction) throw new Error('BEGIN inside an open transaction');
        this.evidence.relations.clear();
        this.evidence.messagePrefixes.length = 0;
        this.scratch.length = 0;
        this.pastResume ||= compareLsn(message.finalLsn, this.resumeLsn) > 0;
        this.transaction = {
          lsn: message.finalLsn,
          xid: message.xid,
          commitMicros: message.commitMicros,
          skip: !this.pastResume,
          emittedHeader: null,
          nextIndex: 0,
          pending: this.scratch,
          migration: false,
        };
        return null;
      case 'relation':
        return null;
      case 'commit':
        return this.commit();
      case 'message':
        if (!message.transactional || !message.prefix.startsWith(LOCKSTEP_MESSAGE_PREFIX)) {
          return null;
        }
        if (!isOpenMessage(message.prefix)) return this.ignore(message.prefix, 'forged');
        return this.control({ kind: 'message', prefix: message.prefix, content: message.content });
      case 'truncate': {
        const relations = message.relations.filter((r) => r.schema !== CONTROL_SCHEMA);
        if (relations.length === 0) return null;
        this.requireTransaction(message.kind);
        for (const relation of relations) this.evidence.relations.add(relation);
        return this.add(
          relations.length === message.relations.length ? message : { ...message, relations },
        );
      }
      case 'insert':
      case 'update':
      case 'delete': {
        if (message.kind === 'insert' && isControlEventTable(message.relation)) {
          const event = controlEventChange(message.relation, (i) => message.row.at(i));
          if (!event) return null;
          if (event.prefix === DDL_MESSAGE && !this.options.captureDdl)
            return this.ignore(event.prefix, 'capture-off');
          return this.control(event);
        }
        if (message.relation.schema === CONTROL_SCHEMA) return null;
        this.requireTransaction(message.kind);
        this.evidence.relations.add(message.relation);
        return this.add(message);
      }
    }
  }

  private requireTransaction(kind: string) {
    if (!this.transaction) throw new Error(`pgoutput ${kind} outside a transaction`);
    return this.transaction;
  }

  /** A control message or event lockstep vouches for, at its place in the transaction. */
  private control(change: MessageChange): PacketPart | null {
    const tx = this.requireTransaction(change.kind);
    this.evidence.messagePrefixes.push(change.prefix);
    if (change.prefix === MIGRATION_MARKER && tx.pending.length === 0 && !tx.emittedHeader)
      tx.migration = true;
    return this.add(change);
  }

  private ignore(prefix: string, reason: IgnoredControl['reason']): null {
    const tx = this.requireTransaction('message');
    if (!tx.skip) this.options.onIgnored?.({ xid: tx.xid, lsn: tx.lsn, prefix, reason });
    return null;
  }

  private add(change: Change): PacketPart | null {
    const tx = this.requireTransaction(change.kind);
    if (tx.skip || (tx.migration && change.kind !== 'message')) return null;
    tx.pending.push(change);
    if (tx.pending.length < this.options.maxPartChanges) return null;
    return this.emit(null);
  }

  private commit(): PacketPart | null {
    const tx = this.requireTransaction('commit');
    if (tx.skip || (tx.emittedHeader === null && tx.pending.length === 0)) {
      this.transaction = null;
      return null;
    }
    // A migration's packet is one-phase: its round already committed it on every node, and a
    // replica that lacks it halts alone at its marker (migration-marker.ts) instead of holding
    // every replica at a stream round it could never vote yes in.
    const phase = tx.migration ? 'one' : (this.options.decidePhase?.(this.evidence) ?? 'one');
    const part = this.emit(FINAL[phase]);
    this.transaction = null;
    return part;
  }

  private emit(final: PacketPart['final']): PacketPart {
    const tx = this.requireTransaction('change');
    if (!tx.emittedHeader) {
      this.version += 1;
      tx.emittedHeader = new StreamedHeader(this.version, tx.lsn, tx.xid, tx.commitMicros);
    }
    const part: PacketPart = {
      header: tx.emittedHeader,
      index: tx.nextIndex++,
      changes: tx.pending.slice(),
      final,
    };
    tx.pending.length = 0;
    return part;
  }
}
