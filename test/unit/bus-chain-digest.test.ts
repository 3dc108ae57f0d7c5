import { generateKeyPairSync } from 'node:crypto';
import { headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { BusSigner } from '../../adapters/nats/bus-signing.js';
import { signedMessage, storedPacket } from '../../adapters/nats/packet-message.js';
import { PacketSignatureCheck } from '../../adapters/nats/packet-signature-check.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import { PREVIOUS_HEADER } from '../../plugin/protocol/bus-signed-bytes.js';
import type { Change } from '../../plugin/protocol/index.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { checkTail, confirmedOn, follows } from '../../plugin/sidecar/bus-chain.js';
import { memoryPacketLog } from '../support/memory-packet-log.js';

const lsnOf = (version: number) => `0/${(version * 16).toString(16).toUpperCase()}` as Lsn;

/** Whole one-change packets; `verified` counts the signatures the walk checked. */
function chainedBus(versions: number, forged: { at?: number } = {}) {
  const verified: number[] = [];
  const stored: StoredPart[] = [];
  for (let version = 1; version <= versions; version++) {
    const foreign = version === forged.at;
    const ownDigest = `d${version}`;
    stored.push({
      sequence: version,
      position: { version, part: 0, changes: 1, final: 'one' },
      part: {
        header: { version, lsn: lsnOf(version), xid: version, commitTime: '2026-01-01' },
        index: 0,
        changes: [{} as Change],
        final: { phase: 'one' },
      },
      signed: () => {
        verified.push(version);
        return !foreign;
      },
      // A foreign message has a digest of its own, whatever it copied of ours.
      digest: () => (foreign ? `f${version}` : ownDigest),
      // Ours name the digest of the one they were sent after: the foreign one took its place.
      ...(version > 1 ? { chained: `d${version - 1}` } : {}),
    });
  }
  return { log: memoryPacketLog(stored), stored, verified };
}

describe('the resume walk over a chained run', () => {
  it('verifies only the newest message', async () => {
    const { log, stored, verified } = chainedBus(12);
    const tail = await checkTail(log, stored.at(-1) as StoredPart, lsnOf(1), 12);
    expect(tail).toMatchObject({ repair: null, walked: 11 });
    expect(verified).toEqual([12]);
  });

  it('catches a forged message in the middle: its successor names the one it replaced', async () => {
    // A foreign message took sequence 6; ours for it was refused, the next one (in flight) landed at 7.
    const { log, stored, verified } = chainedBus(10, { at: 6 });
    const tail = await checkTail(log, stored.at(-1) as StoredPart, lsnOf(1), 10);
    expect(tail).toMatchObject({
      last: { sequence: 5 },
      repair: { from: 6, to: 10, unsigned: true },
      removing: [10, 9, 8, 7, 6],
    });
    // The chain vouches down to 7; 6 fails its own check; 5 is verified, and vouches for the rest.
    expect(verified).toEqual([10, 6, 5]);
  });
});

function keyPair() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signer = new BusSigner(privateKey);
  return { signer, verifier: signer.verifier() };
}

const SUBJECT = 'lockstep.s.packets';
const position = (version: number) => ({ version, part: 0, changes: 1, final: 'one' as const });
const body = (version: number) =>
  encodePacketPart({
    header: { version, lsn: lsnOf(version), xid: version, commitTime: '2026-01-01' },
    index: 0,
    changes: [],
    final: { phase: 'one' },
  });

describe('a packet message’s chain digest', () => {
  it('is named by the next message, and a copy at another sequence matches neither', () => {
    const { signer, verifier } = keyPair();
    const first = signedMessage(signer, SUBJECT, 3, position(3), body(3), undefined);
    const second = signedMessage(signer, SUBJECT, 4, position(4), body(4), first.digest);
    const atThree = storedPacket(SUBJECT, 3, first.headers, body(3), verifier);
    const atFour = storedPacket(SUBJECT, 4, second.headers, body(4), verifier);
    expect([atThree.signed(), atFour.signed()]).toEqual([true, true]);
    expect(atThree.chained).toBeUndefined();
    expect(atFour.chained).toBe(atThree.digest());
    // The same genuine message stored at sequence 5 (copied there): another digest, no valid signature.
    const copied = storedPacket(SUBJECT, 5, first.headers, body(3), verifier);
    expect(copied.digest()).not.toBe(atFour.chained);
    expect(copied.signed()).toBe(false);
  });

  it('is covered by the signature: a message whose named digest was changed fails', () => {
    const { signer, verifier } = keyPair();
    const second = signedMessage(signer, SUBJECT, 4, position(4), body(4), 'genuine');
    const altered = headers();
    for (const [name, values] of second.headers) altered.set(name, values[0] as string);
    altered.set(PREVIOUS_HEADER, 'forged');
    expect(storedPacket(SUBJECT, 4, second.headers, body(4), verifier).signed()).toBe(true);
    expect(storedPacket(SUBJECT, 4, altered, body(4), verifier).signed()).toBe(false);
  });

  it('leaves what agents check readable: chained messages and those from before the chain', () => {
    const { signer, verifier } = keyPair();
    const check = new PacketSignatureCheck(verifier, SUBJECT, 'r1');
    const unchained = signedMessage(signer, SUBJECT, 1, position(1), body(1), undefined);
    const chained = signedMessage(signer, SUBJECT, 2, position(2), body(2), unchained.digest);
    const get = (h: typeof chained.headers) => (name: string) => h.get(name) || undefined;
    expect(() => check.check(1, get(unchained.headers), body(1))).not.toThrow();
    expect(() => check.check(2, get(chained.headers), body(2))).not.toThrow();
    expect(() => check.check(3, get(chained.headers), body(2))).toThrow(/message 3/);
  });

  it('reads a message no lockstep wrote as one that follows nothing; one signed so is an error', () => {
    const { signer, verifier } = keyPair();
    const genuine = signedMessage(signer, SUBJECT, 3, position(3), body(3), undefined);
    const atThree = storedPacket(SUBJECT, 3, genuine.headers, body(3), verifier);
    const junk = new TextEncoder().encode('{}');
    const bare = storedPacket(SUBJECT, 4, undefined, junk, verifier);
    // Headers of a packet, a body that is none.
    const garbled = storedPacket(SUBJECT, 4, genuine.headers, junk, verifier);
    for (const foreign of [bare, garbled]) {
      expect(foreign.signed()).toBe(false);
      expect([follows(atThree, foreign), follows(foreign, atThree)]).toEqual([false, false]);
      expect(confirmedOn(foreign, 'FFFFFFFF/FFFFFFFF' as Lsn)).toBe(false);
    }
    // Its signature verifies: a format of a newer lockstep, not a forgery to remove.
    const newer = signedMessage(signer, SUBJECT, 5, position(5), junk, undefined);
    expect(() => storedPacket(SUBJECT, 5, newer.headers, junk, verifier)).toThrow(LockstepError);
  });
});
