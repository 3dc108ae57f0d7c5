import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  type AgentRequest,
  type AgentVerb,
  agentSubject,
  coordinatorSubject,
  type DecisionQuestion,
  encodeWire,
  type StreamStanding,
  type WaitingPacket,
  type WireReply,
} from '../../plugin/protocol/round-subjects.js';
import type { BusVerifier } from './bus-signing.js';
import { askOverBus, serveOverBus, signedRequest } from './round-requests.js';

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
 * refused before it is read (nothing done, no vote) and logged.
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
    ask(gid: string): Promise<WireReply<'commit' | 'abort'>> {
      const question: DecisionQuestion = { gid, replica };
      return askOverBus(nc, coordinatorSubject(slot, 'decision'), question, questionTimeoutMs);
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

/** Whether stream `slot` is paused, as its coordinator says; null without its answer in time. */
export async function askStreamPaused(
  nc: NatsConnection,
  slot: string,
  timeoutMs: number,
): Promise<boolean | null> {
  try {
    const reply = await askOverBus<StreamStanding>(
      nc,
      coordinatorSubject(slot, 'stream'),
      {},
      timeoutMs,
    );
    return reply.ok ? reply.value.paused : null;
  } catch {
    return null;
  }
}

/** The coordinator's end: answers agents' questions and hears of replicas waiting at a round. */
export function coordinatorRoundTransport(nc: NatsConnection, slot: string) {
  return {
    serve(handlers: {
      /** Null: this process does not hold the coordinator lock, and stays silent. */
      decision(question: DecisionQuestion): Promise<WireReply<'commit' | 'abort'> | null>;
      waiting(packet: WaitingPacket): void;
      stream(): Promise<WireReply<StreamStanding> | null>;
    }): () => Promise<void> {
      const decisions = serveOverBus<DecisionQuestion>(
        nc,
        coordinatorSubject(slot, 'decision'),
        (question) => handlers.decision(question),
      );
      const waiting = serveOverBus<WaitingPacket>(
        nc,
        coordinatorSubject(slot, 'waiting'),
        async (packet) => {
          handlers.waiting(packet);
          return { ok: true, value: null };
        },
      );
      const stream = serveOverBus<unknown>(nc, coordinatorSubject(slot, 'stream'), () =>
        handlers.stream(),
      );
      return async () => {
        decisions.unsubscribe();
        waiting.unsubscribe();
        stream.unsubscribe();
      };
    },
  };
}
