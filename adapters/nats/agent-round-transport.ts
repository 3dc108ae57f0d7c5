import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  type AgentRequest,
  type AgentVerb,
  agentSubject,
  coordinatorSubject,
  type DecisionQuestion,
  encodeWire,
  type StreamQuestion,
  type StreamStanding,
  type WaitingPacket,
  type WireReply,
} from '../../plugin/protocol/round-subjects.js';
import type { BusSigner, BusVerifier } from './bus-signing.js';
import { askForSignedAnswer, serveOverBus, signedRequest } from './round-requests.js';
import {
  decisionAnswerSignature,
  signedDecision,
  signedStreamAnswer,
  streamAnswerSignature,
} from './signed-answers.js';

const VERBS: readonly AgentVerb[] = [
  'prepare',
  'delta',
  'decided',
  'list',
  'commit',
  'rollback',
  'applied',
  'migrate',
  'alive',
];

/**
 * An agent's end of two-phase rounds on NATS: the subjects it serves, the
 * questions it asks. A request not signed with `lockstep run`'s key is
 * refused before it is read (nothing done, no vote) and logged; an answer not
 * signed with it is no answer (the gid stays prepared, asked about again).
 */
export function agentRoundTransport(
  nc: NatsConnection,
  slot: string,
  replica: string,
  questionTimeoutMs: number,
  trust: { readonly verifier: BusVerifier; readonly log: Logger },
) {
  const trusted = (msg: Parameters<typeof signedRequest>[1]) => {
    if (signedRequest(trust.verifier, msg)) return true;
    trust.log.error(
      { replica, subject: msg.subject, event: 'bus-signature-invalid' },
      'a request is not signed by lockstep run: refused',
    );
    return false;
  };
  return {
    serve(handle: (verb: AgentVerb, request: AgentRequest) => Promise<WireReply<unknown>>) {
      const subscriptions: Subscription[] = VERBS.map((verb) =>
        serveOverBus<AgentRequest>(
          nc,
          agentSubject(slot, replica, verb),
          (request) => handle(verb, request),
          trusted,
        ),
      );
      return async () => {
        for (const subscription of subscriptions) subscription.unsubscribe();
      };
    },
    async ask(gid: string): Promise<WireReply<'commit' | 'abort'>> {
      const question: DecisionQuestion = { gid, replica };
      const subject = coordinatorSubject(slot, 'decision');
      const { answer, signature } = await askForSignedAnswer<'commit' | 'abort'>(
        nc,
        subject,
        question,
        questionTimeoutMs,
      );
      if (!answer.ok || signedDecision(trust.verifier, subject, gid, answer, signature))
        return answer;
      trust.log.error(
        { replica, subject, gid, event: 'bus-signature-invalid' },
        'an answer on a gid is not signed by lockstep run: ignored',
      );
      throw new Error(`the answer on ${gid} is not signed by lockstep run`);
    },
    waiting(packet: WaitingPacket): void {
      try {
        nc.publish(coordinatorSubject(slot, 'waiting'), encodeWire(packet));
      } catch {
        // A closed connection: told again at the next look at the gate.
      }
    },
  };
}

/**
 * Whether stream `slot` is paused, as its coordinator says; null without its
 * answer in time, or with one not signed by it (logged).
 */
export async function askStreamPaused(
  nc: NatsConnection,
  slot: string,
  timeoutMs: number,
  trust: { readonly verifier: BusVerifier; readonly log: Logger },
): Promise<boolean | null> {
  const subject = coordinatorSubject(slot, 'stream');
  const question: StreamQuestion = { nonce: randomBytes(12).toString('base64') };
  let reply: Awaited<ReturnType<typeof askForSignedAnswer<StreamStanding>>>;
  try {
    reply = await askForSignedAnswer<StreamStanding>(nc, subject, question, timeoutMs);
  } catch {
    return null;
  }
  const { answer, signature } = reply;
  if (!answer.ok) return null;
  if (signedStreamAnswer(trust.verifier, subject, question.nonce ?? '', answer, signature))
    return answer.value.paused;
  trust.log.error(
    { subject, event: 'bus-signature-invalid' },
    'an answer on the stream is not signed by lockstep run: ignored',
  );
  return null;
}

/** The coordinator's end: answers agents' questions (signed) and hears of replicas waiting at a round. */
export function coordinatorRoundTransport(nc: NatsConnection, slot: string, signer: BusSigner) {
  return {
    serve(handlers: {
      /** Null: this process does not hold the coordinator lock, and stays silent. */
      decision(question: DecisionQuestion): Promise<WireReply<'commit' | 'abort'> | null>;
      waiting(packet: WaitingPacket): void;
      stream(): Promise<WireReply<StreamStanding> | null>;
    }): () => Promise<void> {
      const decisionSubject = coordinatorSubject(slot, 'decision');
      const decisions = serveOverBus<DecisionQuestion>(
        nc,
        decisionSubject,
        (question) => handlers.decision(question),
        undefined,
        (question, answer) => decisionAnswerSignature(signer, decisionSubject, question, answer),
      );
      const waiting = serveOverBus<WaitingPacket>(
        nc,
        coordinatorSubject(slot, 'waiting'),
        async (packet) => {
          handlers.waiting(packet);
          return { ok: true, value: null };
        },
      );
      const streamSubject = coordinatorSubject(slot, 'stream');
      const stream = serveOverBus<StreamQuestion>(
        nc,
        streamSubject,
        () => handlers.stream(),
        undefined,
        (question, answer) => streamAnswerSignature(signer, streamSubject, question, answer),
      );
      return async () => {
        decisions.unsubscribe();
        waiting.unsubscribe();
        stream.unsubscribe();
      };
    },
  };
}
