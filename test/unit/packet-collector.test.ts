import { describe, expect, it } from 'vitest';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { PacketCollector, type PacketPart } from '../../plugin/protocol/packet.js';
import { decodePacketPart, encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';

const relation = {
  oid: 16384,
  schema: 'public',
  name: 't',
  replicaIdentity: 'default' as const,
  columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: 'int4', isKey: true }],
  keyIndexes: [0],
};

/** Part `index` of packet `version`, one insert of `id`, as a bus message carries it. */
function overTheBus(version: number, index: number, id: number, final: boolean): PacketPart {
  const header = {
    version,
    lsn: `0/${(version * 16).toString(16)}` as Lsn,
    xid: 700 + version,
    commitTime: '2026-11-29 02:07:29.123456+00',
  };
  const changes = [{ kind: 'insert' as const, relation, row: [String(id)] }];
  const part = { header, index, changes, final: final ? { phase: 'one' as const } : null };
  return decodePacketPart(encodePacketPart(part));
}

describe('a packet collector', () => {
  it('joins a packet whose parts were decoded from separate messages', () => {
    const collector = new PacketCollector();
    expect(collector.add(overTheBus(5, 0, 1, false))).toBeNull();
    expect(collector.add(overTheBus(5, 1, 2, false))).toBeNull();
    const packet = collector.add(overTheBus(5, 2, 3, true));
    expect(packet).toMatchObject({ version: 5, lsn: '0/50', xid: 705, phase: 'one' });
    expect(packet?.changes.map((c) => c.kind === 'insert' && Number(c.row.at(0)))).toEqual([
      1, 2, 3,
    ]);
  });

  it('refuses a part of another packet, or a part skipped', () => {
    const collector = new PacketCollector();
    collector.add(overTheBus(5, 0, 1, false));
    expect(() => collector.add(overTheBus(6, 1, 2, true))).toThrow(/out of order.*version 6/);
    const skipped = new PacketCollector();
    skipped.add(overTheBus(5, 0, 1, false));
    expect(() => skipped.add(overTheBus(5, 2, 2, true))).toThrow(/expected version 5 part 1/);
  });
});
