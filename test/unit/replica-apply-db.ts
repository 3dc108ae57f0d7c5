/**
 * The replica database of the apply machine's model tests. Every write is
 * checked: it starts at the stored version (compare-and-set), a large packet
 * arrives part after part, nothing is written while a round is prepared, and
 * a two-phase packet is committed only through its round, or one-phase once
 * its round committed without this replica.
 */
import { expect } from 'vitest';
import {
  type ApplyCommand,
  compareLsn,
  type GateRequest,
  type Lsn,
  type PacketPart,
  ZERO_LSN,
} from '../../plugin/protocol/index.js';

const lsnOf = (v: number) => `0/${(v * 16).toString(16).toUpperCase()}` as Lsn;
const change = { kind: 'message' as const, prefix: 'lockstep.x', content: '' };

/** The stream: `spec[v - 1]` = [phase two?, parts, rows per part]. */
export function makePackets(spec: ReadonlyArray<[boolean, number, number]>): PacketPart[][] {
  return spec.map(([two, count, rows], i) => {
    const header = { version: i + 1, lsn: lsnOf(i + 1), xid: i + 1, commitTime: '' };
    return Array.from({ length: count }, (_, index) => ({
      header,
      index,
      changes: Array.from({ length: rows }, () => change),
      final: index === count - 1 ? { phase: two ? ('two' as const) : ('one' as const) } : null,
    }));
  });
}

interface Prepared {
  readonly request: GateRequest;
  readonly versions: number[];
  readonly to: { version: number; lsn: Lsn };
}

export class ReplicaDb {
  version = 0;
  lsn: Lsn = ZERO_LSN;
  /** Versions committed, in commit order: must be 1, 2, 3, … */
  readonly applied: number[] = [];
  open: { from: number; version: number; next: number } | null = null;
  readonly prepared = new Map<string, Prepared>();

  constructor(
    private readonly packets: PacketPart[][],
    private readonly committedElsewhere: () => number,
  ) {}

  private phase(version: number): 'one' | 'two' {
    const parts = this.packets[version - 1] as PacketPart[];
    return (parts[parts.length - 1] as PacketPart).final?.phase ?? 'one';
  }

  /**
   * Whether `command` waits for the position row that a prepared round holds
   * locked: it then fails at the apply deadline (the agent retries), as in
   * Postgres. So nothing after a two-phase version lands before its decision.
   */
  blocks(command: ApplyCommand): boolean {
    if (this.prepared.size === 0) return false;
    return ['apply-batch', 'apply-part', 'commit', 'advance'].includes(command.type);
  }

  private writable(): void {
    expect([...this.prepared.keys()], 'a write passed a prepared round').toEqual([]);
  }

  private commit(versions: number[], to: { version: number; lsn: Lsn }, gid?: string): void {
    expect(versions[0], 'compare-and-set: the write starts at the stored version').toBe(
      this.version + 1,
    );
    versions.forEach((v, i) => {
      expect(v).toBe(this.version + 1 + i);
    });
    expect(to.version).toBe(versions[versions.length - 1]);
    if (gid !== undefined) {
      for (const v of versions) expect(this.phase(v)).toBe('two');
      const request = { gid, from: versions[0] as number, to: to.version };
      this.prepared.set(gid, { request, versions, to });
      return;
    }
    for (const v of versions)
      if (this.phase(v) === 'two')
        expect(
          this.committedElsewhere(),
          `two-phase ${v} applied one-phase`,
        ).toBeGreaterThanOrEqual(v);
    this.applied.push(...versions);
    this.version = to.version;
    this.lsn = to.lsn;
  }

  /** Queued only: the first part's write is what waits for the position row. */
  begin(from: number): void {
    expect(this.open, 'begin inside an open transaction').toBeNull();
    this.open = { from, version: 0, next: 0 };
  }

  perform(command: ApplyCommand): void {
    switch (command.type) {
      case 'apply-batch':
        this.writable();
        expect(this.open).toBeNull();
        this.commit(
          command.parts.map((p) => {
            expect(p.index).toBe(0);
            expect(p.final).not.toBeNull();
            return p.header.version;
          }),
          command.position,
          command.gid,
        );
        return;
      case 'apply-part': {
        this.writable();
        const open = this.open;
        expect(open, 'a part outside a transaction').not.toBeNull();
        if (!open) return;
        if (open.next === 0) open.version = command.part.header.version;
        expect(command.part.header.version).toBe(open.version);
        expect(command.part.index, 'parts in order').toBe(open.next);
        open.next++;
        return;
      }
      case 'commit': {
        const open = this.open;
        expect(open, 'commit outside a transaction').not.toBeNull();
        if (!open) return;
        expect(open.from).toBe(this.version);
        const parts = this.packets[open.version - 1] as PacketPart[];
        expect(open.next, 'a large packet committed whole').toBe(parts.length);
        this.open = null;
        this.commit([open.version], command.position, command.gid);
        return;
      }
      case 'rollback':
        this.open = null;
        return;
      case 'advance':
        expect(command.position.version).toBe(this.version);
        expect(compareLsn(command.position.lsn, this.lsn)).toBeGreaterThan(0);
        this.lsn = command.position.lsn;
        return;
      default:
        throw new Error(`${command.type} is not work on the replica`);
    }
  }

  commitPrepared(gid: string): void {
    const prepared = this.prepared.get(gid);
    if (!prepared) return;
    this.prepared.delete(gid);
    expect(prepared.versions[0]).toBe(this.version + 1);
    this.applied.push(...prepared.versions);
    this.version = prepared.to.version;
    this.lsn = prepared.to.lsn;
  }

  rollbackPrepared(gid: string): void {
    this.prepared.delete(gid);
  }
}
