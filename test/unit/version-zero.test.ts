import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketAssembler } from '../../plugin/primary/packet-assembler.js';
import {
  lsnFromBigInt,
  type Packet,
  PacketCollector,
  type Relation,
  versionZeroLsn,
} from '../../plugin/protocol/index.js';

const users: Relation = {
  oid: 1,
  schema: 'public',
  name: 'users',
  replicaIdentity: 'default',
  columns: [
    { name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true },
    { name: 'v', typeOid: 25, typeMod: -1, typeName: null, isKey: false },
  ],
  keyIndexes: [0],
};

/** The packets one transaction committing at `finalLsn` gives, numbering from `resumeLsn` at version 0. */
function packetsOf(finalLsn: string, resumeLsn: string): Packet[] {
  const assembler = new PacketAssembler({
    resume: { version: 0, lsn: resumeLsn as Packet['lsn'] },
    maxPartChanges: 1000,
    captureDdl: true,
  });
  const collector = new PacketCollector();
  const packets: Packet[] = [];
  for (const message of [
    { kind: 'relation', relation: users },
    { kind: 'begin', finalLsn, xid: 700, commitMicros: 1_795_600_800_000_001 },
    { kind: 'insert', relation: users, row: ['1', null] },
    { kind: 'commit' },
  ] as Parameters<PacketAssembler['push']>[0][]) {
    const part = assembler.push(message);
    const packet = part && collector.add(part);
    if (packet) packets.push(packet);
  }
  return packets;
}

describe('version 0 after attach', () => {
  it('numbers exactly what the copy lacks, a commit at the consistent point included', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0x100n, max: 0xffff_ffff_ffffn }),
        fc.integer({ min: -2, max: 2 }),
        (point, offset) => {
          const finalLsn = lsnFromBigInt(point + BigInt(offset));
          const packets = packetsOf(finalLsn, versionZeroLsn(lsnFromBigInt(point)));
          // The slot's snapshot holds what committed before its consistent point.
          const inCopy = offset < 0;
          expect(packets.map((p) => p.version)).toEqual(inCopy ? [] : [1]);
        },
      ),
    );
  });
});
