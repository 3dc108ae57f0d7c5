import {
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  RequestError,
  type Subscription,
} from '@nats-io/transport-node';
import { requestSignedBytes, SIGNATURE_HEADER } from '../../plugin/protocol/bus-signed-bytes.js';
import { decodeWire, encodeWire, type WireReply } from '../../plugin/protocol/round-subjects.js';
import type { BusSigner, BusVerifier } from './bus-signing.js';

/** The header signing `data` sent on `subject` (a coordinator's request to an agent). */
export function requestSignature(signer: BusSigner, subject: string, data: Uint8Array): MsgHdrs {
  const h = headers();
  h.set(SIGNATURE_HEADER, signer.sign(requestSignedBytes(subject, data)));
  return h;
}

/** Whether `msg` carries a valid signature over its subject and body. */
export function signedRequest(verifier: BusVerifier, msg: Msg): boolean {
  const signature = msg.headers?.get(SIGNATURE_HEADER) || undefined;
  return verifier.verify(requestSignedBytes(msg.subject, msg.data), signature);
}

/**
 * One request of a two-phase round: its reply, or an error once `timeoutMs`
 * passed or nobody serves the subject (the caller counts either as a failure,
 * never waits for ever).
 */
export async function askOverBus<T>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeoutMs: number,
  /** Signs the request (the coordinator's to agents); unsigned without it. */
  signer?: BusSigner,
): Promise<WireReply<T>> {
  let reply: Awaited<ReturnType<NatsConnection['request']>>;
  const data = encodeWire(body);
  const signed = signer ? { headers: requestSignature(signer, subject, data) } : {};
  try {
    reply = await nc.request(subject, data, { timeout: timeoutMs, ...signed });
  } catch (error) {
    throw new Error(`no answer on ${subject} within ${timeoutMs} ms: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return decodeWire<WireReply<T>>(reply.data);
}

/** Whether a request failed because nothing serves its subject (as opposed to no answer in time). */
export function noResponders(error: unknown): boolean {
  const cause = (error as Error | undefined)?.cause;
  return cause instanceof RequestError && cause.isNoResponders();
}

/**
 * Serves requests on `subject` with `handle`, each as it comes (a prepare
 * may wait for the applier while a rollback is answered): the reply is what
 * it resolves to, a failure an error reply. Null sends none: the subject has
 * other subscribers and one of them answers (a request takes the first reply,
 * so a process that may not answer must stay silent, not refuse).
 */
export function serveOverBus<Q>(
  nc: NatsConnection,
  subject: string,
  handle: (request: Q) => Promise<WireReply<unknown> | null>,
  /** Checked before anything of a request is read: false refuses it, nothing done. */
  trusted: (msg: Msg) => boolean = () => true,
): Subscription {
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      // A reply after the connection closed (a handler outlasting a stop) is dropped: the
      // requester times out, as it does for any lost reply; it must not end the process.
      const reply = (answer: WireReply<unknown>) => {
        try {
          msg.respond(encodeWire(answer));
        } catch {}
      };
      if (!trusted(msg)) {
        reply({ ok: false, error: 'refused: the request is not signed by lockstep run' });
        return;
      }
      let request: Q;
      try {
        request = decodeWire<Q>(msg.data);
      } catch (bad) {
        reply({ ok: false, error: (bad as Error).message });
        return;
      }
      void handle(request).then(
        (answer) => answer && reply(answer),
        (failure: Error) => reply({ ok: false, error: failure.message }),
      );
    },
  });
}
