import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BusSigner, BusVerifier } from '../../adapters/nats/bus-signing.js';
import {
  decisionAnswerSignature,
  signedDecision,
  signedStreamAnswer,
  streamAnswerSignature,
} from '../../adapters/nats/signed-answers.js';
import {
  decisionSignedBytes,
  requestSignedBytes,
  streamStandingSignedBytes,
} from '../../plugin/protocol/bus-signed-bytes.js';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const SUBJECT = 'lockstep.s.coordinator.decision';
const GID = 'lockstep_s_7_3e1';

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signer: new BusSigner(privateKey), verifier: new BusVerifier(publicKey) };
}

describe("the bytes signed for the coordinator's answers", () => {
  it('name their kind, the subject, what the answer is about and the answer', () => {
    expect(text(decisionSignedBytes(SUBJECT, GID, 'commit'))).toBe(
      `lockstep-decision-v1\n${SUBJECT}\n${GID}\ncommit\n`,
    );
    expect(text(streamStandingSignedBytes('lockstep.s.coordinator.stream', 'n0', true))).toBe(
      'lockstep-stream-v1\nlockstep.s.coordinator.stream\nn0\ntrue\n',
    );
  });

  it('differ when the subject, the gid, the decision or the nonce differs', () => {
    const base = text(decisionSignedBytes(SUBJECT, GID, 'abort'));
    for (const variant of [
      decisionSignedBytes('lockstep.t.coordinator.decision', GID, 'abort'),
      decisionSignedBytes(SUBJECT, 'lockstep_s_8_4e1', 'abort'),
      decisionSignedBytes(SUBJECT, GID, 'commit'),
      // A request's bytes with the same text never pass as an answer's.
      requestSignedBytes(SUBJECT, new TextEncoder().encode(`${GID}\nabort\n`)),
    ])
      expect(text(variant)).not.toBe(base);
    const stream = text(streamStandingSignedBytes('x', 'n0', false));
    expect(text(streamStandingSignedBytes('x', 'n1', false))).not.toBe(stream);
    expect(text(streamStandingSignedBytes('x', 'n0', true))).not.toBe(stream);
  });
});

describe("checking the coordinator's answers", () => {
  it('passes a decision only for its gid, its value and the key of lockstep run', () => {
    const { signer, verifier } = keyPair();
    const commit = { ok: true as const, value: 'commit' as const };
    const signature = decisionAnswerSignature(signer, SUBJECT, { gid: GID, replica: 'r' }, commit);
    expect(signedDecision(verifier, SUBJECT, GID, commit, signature)).toBe(true);
    expect(signedDecision(verifier, SUBJECT, 'lockstep_s_8_4e1', commit, signature)).toBe(false);
    expect(
      signedDecision(verifier, SUBJECT, GID, { ok: true, value: 'abort' as const }, signature),
    ).toBe(false);
    expect(signedDecision(verifier, SUBJECT, GID, commit, undefined)).toBe(false);
    expect(signedDecision(keyPair().verifier, SUBJECT, GID, commit, signature)).toBe(false);
    // A refusal is never acted on: not signed.
    const refusal = { ok: false as const, error: 'no' };
    expect(decisionAnswerSignature(signer, SUBJECT, { gid: GID, replica: 'r' }, refusal)).toBe(
      undefined,
    );
  });

  it('passes a stream answer only for the nonce it answers', () => {
    const { signer, verifier } = keyPair();
    const paused = { ok: true as const, value: { paused: true } };
    const signature = streamAnswerSignature(signer, 'x', { nonce: 'n0' }, paused);
    expect(signedStreamAnswer(verifier, 'x', 'n0', paused, signature)).toBe(true);
    expect(signedStreamAnswer(verifier, 'x', 'n1', paused, signature)).toBe(false);
    const running = { ok: true as const, value: { paused: false } };
    expect(signedStreamAnswer(verifier, 'x', 'n0', running, signature)).toBe(false);
  });
});
