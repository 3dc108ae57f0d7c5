import {
  decisionSignedBytes,
  streamStandingSignedBytes,
} from '../../plugin/protocol/bus-signed-bytes.js';
import type {
  DecisionQuestion,
  StreamQuestion,
  StreamStanding,
  WireReply,
} from '../../plugin/protocol/round-subjects.js';
import type { BusSigner, BusVerifier } from './bus-signing.js';

/**
 * The coordinator's answers to agents' questions, signed with `lockstep run`'s
 * key: whoever can reply on a coordinator subject could otherwise tell an
 * agent to COMMIT PREPARED a gid the coordinator aborted. Only a value is
 * signed: a refusal is never acted on (the agent asks again later).
 */

/** The signature of `answer` to `question` on `subject`; none for a refusal. */
export function decisionAnswerSignature(
  signer: BusSigner,
  subject: string,
  question: DecisionQuestion,
  answer: WireReply<unknown>,
): string | undefined {
  if (!answer.ok) return undefined;
  return signer.sign(decisionSignedBytes(subject, question.gid, String(answer.value)));
}

/** Whether `answer` is a decision on `gid` signed with the coordinator's key. */
export function signedDecision(
  verifier: BusVerifier,
  subject: string,
  gid: string,
  answer: WireReply<unknown> & { ok: true },
  signature: string | undefined,
): boolean {
  const { value } = answer;
  if (value !== 'commit' && value !== 'abort') return false;
  return verifier.verify(decisionSignedBytes(subject, gid, value), signature);
}

/** The signature of `answer` to the `stream` question `question`; none for a refusal. */
export function streamAnswerSignature(
  signer: BusSigner,
  subject: string,
  question: StreamQuestion,
  answer: WireReply<unknown>,
): string | undefined {
  if (!answer.ok) return undefined;
  const paused = (answer.value as Partial<StreamStanding> | null)?.paused;
  return signer.sign(streamStandingSignedBytes(subject, question.nonce ?? '', paused === true));
}

/** Whether `answer` to the question with `nonce` is signed with the coordinator's key. */
export function signedStreamAnswer(
  verifier: BusVerifier,
  subject: string,
  nonce: string,
  answer: WireReply<StreamStanding> & { ok: true },
  signature: string | undefined,
): boolean {
  const paused = (answer.value as Partial<StreamStanding> | null)?.paused;
  if (typeof paused !== 'boolean') return false;
  return verifier.verify(streamStandingSignedBytes(subject, nonce, paused), signature);
}
