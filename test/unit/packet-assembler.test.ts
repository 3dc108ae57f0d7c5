import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DecodedMessage } from '../../plugin/ports/decoded-message.js';
import {
  type IgnoredControl,
  PacketAssembler,
  type PacketAssemblerOptions,
} from '../../plugin/primary/packet-assembler.js';
import {
  type Change,
  lsnFromBigInt,
  type Packet,
  PacketCollector,
  type PacketPart,
  type Relation,
  type ResumePoint,
  ZERO_LSN,
} from '../../plugin/protocol/index.js';

function relation(oid: number, schema: string, name: string): Relation {
  return {
    oid,
    schema,
    name,
    replicaIdentity: 'default',
    columns: [
      { name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true },
      { name: 'v', typeOid: 25, typeMod: -1, typeName: null, isKey: false },
    ],
    keyIndexes: [0],
  };
}

const users = relation(1, 'public', 'users');
const order = relation(2, 'public', 'Order');
const control = relation(3, 'lockstep', 'replica_state');
/** lockstep's control-event table: what steers replicas arrives as its rows. */
const controlEvents: Relation = {
  ...relation(4, 'lockstep', 'control_events'),
  columns: [
    { name: 'id', typeOid: 20, typeMod: -1, typeName: null, isKey: true },
    { name: 'kind', typeOid: 25, typeMod: -1, typeName: null, isKey: false },
    { name: 'payload', typeOid: 25, typeMod: -1, typeName: null, isKey: false },
  ],
};

/** A generated primary transaction: its changes, by kind. */
type GenChange =
  | { kind: 'insert'; rel: 0 | 1 | 2; id: number }
  | { kind: 'delete'; rel: 0 | 1 | 2; id: number }
  | { kind: 'message'; prefix: string }
  | { kind: 'event'; event: 'ddl' | 'migration' | 'migration-work' | 'unknown' };

const genChange: fc.Arbitrary<GenChange> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    rel: fc.constantFrom(0, 1, 2),
    id: fc.nat(1000),
  }),
  fc.record({
    kind: fc.constant('delete' as const),
    rel: fc.constantFrom(0, 1, 2),
    id: fc.nat(1000),
  }),
  fc.record({
    kind: fc.constant('message' as const),
    prefix: fc.constantFrom(
      'lockstep.two_phase',
      'lockstep.marker',
      'lockstep.ddl',
      'lockstep.migration',
      'other.app',
    ),
  }),
  fc.record({
    kind: fc.constant('event' as const),
    event: fc.constantFrom('ddl' as const, 'migration' as const, 'unknown' as const),
  }),
);

/** Turns generated transactions into the message stream pgoutput would send. */
function toStream(transactions: GenChange[][]): DecodedMessage[] {
  const rels = [users, order, control, controlEvents];
  const out: DecodedMessage[] = rels.map((r) => ({ kind: 'relation', relation: r }));
  let lsn = 0x1000n;
  transactions.forEach((changes, i) => {
    const finalLsn = lsnFromBigInt(lsn + BigInt(changes.length) * 0x40n);
    out.push({ kind: 'begin', finalLsn, xid: 700 + i, commitMicros: 1_795_600_800_000_001 });
    for (const c of changes) {
      if (c.kind === 'message') {
        out.push({ kind: 'message', transactional: true, prefix: c.prefix, content: 'x' });
      } else if (c.kind === 'event') {
        // As lockstep writes one: inserted, then deleted again in the same transaction.
        out.push({ kind: 'insert', relation: controlEvents, row: ['9', c.event, 'event'] });
        out.push({ kind: 'delete', relation: controlEvents, key: ['9'] });
      } else if (c.kind === 'insert') {
        out.push({ kind: 'insert', relation: rels[c.rel] as Relation, row: [String(c.id), null] });
      } else {
        out.push({ kind: 'delete', relation: rels[c.rel] as Relation, key: [String(c.id)] });
      }
    }
    out.push({ kind: 'commit' });
    lsn += BigInt(changes.length + 1) * 0x40n + 0x100n;
  });
  return out;
}

function assemble(
  messages: DecodedMessage[],
  resume: ResumePoint,
  maxPartChanges = 1000,
  options: Partial<PacketAssemblerOptions> = {},
): Packet[] {
  const assembler = new PacketAssembler({ resume, maxPartChanges, captureDdl: true, ...options });
  const collector = new PacketCollector();
  const packets: Packet[] = [];
  for (const m of messages) {
    const part = assembler.push(m);
    if (part) {
      expect(part.changes.length).toBeLessThanOrEqual(maxPartChanges);
      const packet = collector.add(part);
      if (packet) packets.push(packet);
    }
  }
  return packets;
}

describe('PacketAssembler', () => {
  it('numbers packets densely from the resume version and keeps the header', () => {
    const packets = assemble(
      toStream([[{ kind: 'insert', rel: 0, id: 1 }], [{ kind: 'delete', rel: 1, id: 1 }]]),
      { version: 41, lsn: ZERO_LSN },
    );
    expect(packets.map((p) => p.version)).toEqual([42, 43]);
    expect(packets[0]).toMatchObject({
      xid: 700,
      phase: 'one',
      commitTime: '2026-11-25T10:00:00.000001Z',
    });
    expect(packets[1]?.changes[0]).toMatchObject({ kind: 'delete', relation: order, key: ['1'] });
  });

  it('never emits lockstep schema changes, and a transaction with nothing else gets no version', () => {
    const packets = assemble(
      toStream([
        [{ kind: 'insert', rel: 2, id: 1 }],
        [
          { kind: 'insert', rel: 0, id: 2 },
          { kind: 'insert', rel: 2, id: 3 },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
    );
    expect(packets).toHaveLength(1);
    expect(packets[0]?.version).toBe(1);
    expect(packets[0]?.changes).toHaveLength(1);
  });

  it("sends a migration's packet without its row changes when its marker comes first (every node ran it already)", () => {
    const packets = assemble(
      toStream([
        [
          { kind: 'event', event: 'migration' },
          { kind: 'insert', rel: 0, id: 1 },
          { kind: 'delete', rel: 1, id: 2 },
        ],
        [
          { kind: 'insert', rel: 0, id: 3 },
          { kind: 'event', event: 'migration' },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
    );
    expect(packets.map((p) => p.version)).toEqual([1, 2]);
    expect(packets[0]?.changes).toEqual([
      { kind: 'message', prefix: 'lockstep.migration', content: 'event' },
    ]);
    // A marker after row changes is not lockstep's own migration: the rows stay.
    expect(packets[1]?.changes.map((c) => c.kind)).toEqual(['insert', 'message']);
  });

  it("sends a migration's packet one-phase: a replica lacking it halts alone, holding no round", () => {
    const packets = assemble(
      toStream([
        [
          { kind: 'event', event: 'migration' },
          { kind: 'insert', rel: 0, id: 1 },
        ],
        [
          { kind: 'insert', rel: 0, id: 2 },
          { kind: 'event', event: 'migration' },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
      1000,
      { decidePhase: () => 'two' },
    );
    expect(packets.map((p) => [p.version, p.phase])).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
  });

  it('ignores control messages any role could emit, keeps every row change, and reports them by xid', () => {
    const ignored: IgnoredControl[] = [];
    const packets = assemble(
      toStream([
        [
          { kind: 'message', prefix: 'lockstep.migration' },
          { kind: 'insert', rel: 0, id: 1 },
          { kind: 'message', prefix: 'lockstep.ddl' },
          { kind: 'insert', rel: 0, id: 2 },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
      1000,
      { onIgnored: (i) => ignored.push(i) },
    );
    expect(packets).toHaveLength(1);
    expect(packets[0]?.changes.map((c) => c.kind)).toEqual(['insert', 'insert']);
    expect(ignored.map((i) => [i.xid, i.prefix, i.reason])).toEqual([
      [700, 'lockstep.migration', 'forged'],
      [700, 'lockstep.ddl', 'forged'],
    ]);
  });

  it("carries a migration's work (bus) as a control event only, never from a logical message", () => {
    const ignored: IgnoredControl[] = [];
    const packets = assemble(
      toStream([
        [{ kind: 'event', event: 'migration-work' }],
        [
          { kind: 'message', prefix: 'lockstep.migration_work' },
          { kind: 'insert', rel: 0, id: 1 },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
      1000,
      { onIgnored: (i) => ignored.push(i) },
    );
    expect(packets[0]?.changes).toEqual([
      { kind: 'message', prefix: 'lockstep.migration_work', content: 'event' },
    ]);
    expect(packets[1]?.changes.map((c) => c.kind)).toEqual(['insert']);
    expect(ignored.map((i) => [i.prefix, i.reason])).toEqual([
      ['lockstep.migration_work', 'forged'],
    ]);
  });

  it('carries DDL events only with captureDdl on', () => {
    const stream = toStream([[{ kind: 'event', event: 'ddl' }]]);
    const on = assemble(stream, { version: 0, lsn: ZERO_LSN });
    expect(on[0]?.changes).toEqual([{ kind: 'message', prefix: 'lockstep.ddl', content: 'event' }]);
    const ignored: IgnoredControl[] = [];
    const off = assemble(stream, { version: 0, lsn: ZERO_LSN }, 1000, {
      captureDdl: false,
      onIgnored: (i) => ignored.push(i),
    });
    expect(off).toEqual([]);
    expect(ignored.map((i) => i.reason)).toEqual(['capture-off']);
  });

  it('keeps lockstep messages at their position and drops other prefixes', () => {
    const [packet] = assemble(
      toStream([
        [
          { kind: 'insert', rel: 0, id: 1 },
          { kind: 'message', prefix: 'other.app' },
          { kind: 'message', prefix: 'lockstep.two_phase' },
          { kind: 'insert', rel: 0, id: 2 },
        ],
      ]),
      { version: 0, lsn: ZERO_LSN },
    );
    expect(packet?.changes.map((c) => c.kind)).toEqual(['insert', 'message', 'insert']);
    expect(packet?.changes[1]).toEqual({
      kind: 'message',
      prefix: 'lockstep.two_phase',
      content: 'x',
    });
  });

  it('passes the whole transaction to the phase policy', () => {
    const assembler = new PacketAssembler({
      resume: { version: 0, lsn: ZERO_LSN },
      maxPartChanges: 1,
      decidePhase: (e) =>
        e.messagePrefixes.includes('lockstep.two_phase') ||
        [...e.relations].some((r) => r.name === 'Order')
          ? 'two'
          : 'one',
    });
    const parts = toStream([
      [{ kind: 'insert', rel: 0, id: 1 }],
      [
        { kind: 'insert', rel: 0, id: 1 },
        { kind: 'insert', rel: 1, id: 1 },
      ],
      [{ kind: 'message', prefix: 'lockstep.two_phase' }],
    ])
      .map((m) => assembler.push(m))
      .filter((p) => p !== null);
    expect(parts.map((p) => [p.header.version, p.index, p.final?.phase ?? null])).toEqual([
      [1, 0, null],
      [1, 1, 'one'],
      [2, 0, null],
      [2, 1, null],
      [2, 2, 'two'],
      [3, 0, null],
      [3, 1, 'two'],
    ]);
  });

  it('refuses changes outside a transaction', () => {
    const assembler = new PacketAssembler({
      resume: { version: 0, lsn: ZERO_LSN },
      maxPartChanges: 10,
    });
    expect(() => assembler.push({ kind: 'insert', relation: users, row: ['1', null] })).toThrow(
      /outside/,
    );
  });

  it('re-derives the same packets and versions from any resume point', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(genChange, { maxLength: 6 }), { maxLength: 30 }),
        fc.nat(),
        fc.integer({ min: 1, max: 7 }),
        (transactions, pick, partSize) => {
          const stream = toStream(transactions);
          const all = assemble(stream, { version: 0, lsn: ZERO_LSN });
          // Versions are dense, LSNs increase.
          all.forEach((p, i) => {
            expect(p.version).toBe(i + 1);
          });
          // What steers replicas comes only from control events, never from a message.
          for (const change of all.flatMap((p) => p.changes))
            if (change.kind === 'message' && change.prefix !== 'lockstep.two_phase')
              expect(change.content).toBe('event');
          // Any part size yields the same packets.
          expect(assemble(stream, { version: 0, lsn: ZERO_LSN }, partSize)).toEqual(all);
          if (all.length === 0) return;
          // Resuming after packet k (same WAL read again) yields exactly k+1.. with the same versions.
          const k = pick % all.length;
          const at = all[k] as Packet;
          expect(assemble(stream, { version: at.version, lsn: at.lsn }, partSize)).toEqual(
            all.slice(k + 1),
          );
        },
      ),
    );
  });

  it('never changes a part once emitted: each has its own exact-size changes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(genChange, { maxLength: 9 }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 4 }),
        (transactions, partSize) => {
          // A relation message again before every change: mid-transaction, as after ALTER TABLE.
          const stream = toStream(transactions).flatMap((m): DecodedMessage[] =>
            m.kind === 'insert' || m.kind === 'delete'
              ? [{ kind: 'relation', relation: m.relation }, m]
              : [m],
          );
          const assembler = new PacketAssembler({
            resume: { version: 0, lsn: ZERO_LSN },
            maxPartChanges: partSize,
            captureDdl: true,
          });
          const emitted: { part: PacketPart; seen: Change[] }[] = [];
          for (const m of stream) {
            const part = assembler.push(m);
            if (part) emitted.push({ part, seen: [...part.changes] });
          }
          // Later parts (of this transaction or the next) never show through an earlier one.
          for (const { part, seen } of emitted) expect(part.changes).toStrictEqual(seen);
          expect(new Set(emitted.map((e) => e.part.changes)).size).toBe(emitted.length);
        },
      ),
    );
  });
});
