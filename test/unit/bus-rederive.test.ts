import { describe, expect, it } from 'vitest';
import type { ChangeSource } from '../../plugin/ports/change-source.js';
import type { DecodedMessage } from '../../plugin/ports/decoded-message.js';
import { PrimaryStream } from '../../plugin/primary/primary-stream.js';
import {
  type Lsn,
  lsnFromBigInt,
  type Relation,
  type ResumePoint,
} from '../../plugin/protocol/index.js';
import { type PacketsBetween, rederiveBelowHead } from '../../plugin/sidecar/bus-rederive.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { packetCounter } from '../../plugin/sidecar/packet-count.js';
import { memoryPacketLog } from '../support/memory-packet-log.js';

const head: ResumePoint = { version: 9, lsn: '0/900' as Lsn };
const counting =
  (packets: number): PacketsBetween =>
  async () =>
    packets;

describe('an empty bus below the recorded head', () => {
  it('re-derives from the slot with the version the packets there leave: the head less their count', async () => {
    expect(await rederiveBelowHead(head, '0/701' as Lsn, counting(3))).toEqual({
      resume: { version: 6, lsn: '0/700' },
      packets: 3,
    });
    // The head is the slot's last packet: it is re-derived too.
    expect(await rederiveBelowHead(head, '0/900' as Lsn, counting(1))).toEqual({
      resume: { version: 8, lsn: '0/8FF' },
      packets: 1,
    });
  });

  it('resumes from the head when nothing lies between it and the slot', async () => {
    // Confirmed to one past the head, or an idle head past the slot with no packet in between.
    expect(await rederiveBelowHead(head, '0/901' as Lsn, undefined)).toBeNull();
    expect(await rederiveBelowHead(head, '0/850' as Lsn, counting(0))).toBeNull();
    // Attach's point: numbering starts there. No slot read: nothing to compare.
    expect(
      await rederiveBelowHead({ version: 0, lsn: head.lsn }, '0/10' as Lsn, undefined),
    ).toBeNull();
    expect(await rederiveBelowHead(head, null, undefined)).toBeNull();
  });

  it('refuses when the packets cannot be counted, or more lie there than versions', async () => {
    await expect(rederiveBelowHead(head, '0/701' as Lsn, undefined)).rejects.toThrow(
      /\[bus\] the bus is empty.*0\/701.*version 9 \(0\/900\)[\s\S]*fix: lockstep attach --resync/,
    );
    await expect(rederiveBelowHead(head, '0/701' as Lsn, counting(10))).rejects.toThrow(
      /holds 10 packets there, more than the head's version/,
    );
  });

  it('is where busResume starts on an empty bus, and says so', async () => {
    const plan = await busResume(
      memoryPacketLog([]),
      async () => head,
      async () => '0/701' as Lsn,
      undefined,
      counting(3),
    );
    expect(plan).toEqual({
      resume: { version: 6, lsn: '0/700' },
      cursor: null,
      lastSequence: 0,
      rederived: { packets: 3, head },
    });
    // Without a way to count, never from the head across the gap.
    await expect(
      busResume(
        memoryPacketLog([]),
        async () => head,
        async () => '0/701' as Lsn,
      ),
    ).rejects.toThrow(/cannot be published again/);
  });
});

const users: Relation = {
  oid: 1,
  schema: 'public',
  name: 'users',
  replicaIdentity: 'default',
  columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true }],
  keyIndexes: [0],
};

/** A source replaying `commits` (LSNs; 0 rows: an empty transaction), then a keepalive at `walEnd`. */
function replaying(commits: readonly [number, number][], walEnd: number | null) {
  const opened: ResumePoint[] = [];
  const open = async (resume: ResumePoint) => {
    opened.push(resume);
    const source: ChangeSource = {
      async start(onMessage, _onError, onWalEnd) {
        setTimeout(() => {
          for (const [lsn, rows] of commits) {
            const finalLsn = lsnFromBigInt(BigInt(lsn));
            const begin: DecodedMessage = { kind: 'begin', finalLsn, xid: lsn, commitMicros: 1 };
            onMessage(begin);
            for (let i = 0; i < rows; i++)
              onMessage({ kind: 'insert', relation: users, row: [String(lsn + i)] });
            onMessage({ kind: 'commit' });
          }
          if (walEnd !== null) onWalEnd?.(lsnFromBigInt(BigInt(walEnd)));
        }, 0);
      },
      pause() {},
      resume() {},
      acknowledge() {
        throw new Error('counting acknowledges nothing');
      },
      async stop() {},
    };
    const stream = new PrimaryStream(source, { resume });
    await stream.start();
    return stream;
  };
  return { open, opened };
}

describe('counting the packets in the slot between its point and the head', () => {
  it('counts transactions with rows through the head, stopping at the first past it', async () => {
    const wal = replaying(
      [
        [0x100, 1],
        [0x200, 0],
        [0x300, 2],
        [0x900, 1],
        [0x950, 1],
      ],
      null,
    );
    expect(await packetCounter(wal.open)('0/100' as Lsn, '0/900' as Lsn)).toBe(3);
    // From one before the slot's point, numbered from 0: the first packet there counts.
    expect(wal.opened).toEqual([{ version: 0, lsn: '0/FF' }]);
  });

  it('ends at an idle point at or past the head when nothing more commits', async () => {
    const wal = replaying(
      [
        [0x100, 1],
        [0x300, 1],
      ],
      0x901,
    );
    expect(await packetCounter(wal.open)('0/100' as Lsn, '0/900' as Lsn)).toBe(2);
  });
});
