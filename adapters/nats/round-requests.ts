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

/** The header carrying `signature` (an answer of the coordinator to an agent's question). */
export function signatureHeader(signature: string): MsgHdrs {
  const h = headers();
  h.set(SIGNATURE_HEADER, signature);
  return h;
}

/** The signature `msg` carries; undefined when none. */
export function signatureOf(msg: Msg): string | undefined {
  return msg.headers?.get(SIGNATURE_HEADER) || undefined;
}

/** Whether `msg` carries a valid signature over its subject and body. */
export function signedRequest(verifier: BusVerifier, msg: Msg): boolean {
  return verifier.verify(requestSignedBytes(msg.subject, msg.data), signatureOf(msg));
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
  const data = encodeWire(body);
  const signed = signer ? { headers: requestSignature(signer, subject, data) } : {};
  return decodeWire<WireReply<T>>(
    (await requestOverBus(nc, subject, data, timeoutMs, signed)).data,
  );
}

/** A question to the coordinator: its answer, and the signature the answer carries. */
export async function askForSignedAnswer<T>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ answer: WireReply<T>; signature: string | undefined }> {
  const reply = await requestOverBus(nc, subject, encodeWire(body), timeoutMs, {});
  return { answer: decodeWire<WireReply<T>>(reply.data), signature: signatureOf(reply) };
}

async function requestOverBus(
  nc: NatsConnection,
  subject: string,
  data: Uint8Array,
  timeoutMs: number,
  signed: { headers?: MsgHdrs },
): Promise<Msg> {
  try {
    return await nc.request(subject, data, { timeout: timeoutMs, ...signed });
  } catch (error) {
    throw new Error(`no answer on ${subject} within ${timeoutMs} ms: ${(error as Error).message}`, {
      cause: error,
    });
  }
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
  /** The signature of an answer to `request` (the coordinator's to agents); none: unsigned. */
  signAnswer: (request: Q, answer: WireReply<unknown>) => string | undefined = () => undefined,
): Subscription {
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      // A reply after the connection closed (a handler outlasting a stop) is dropped: the
      // requester times out, as it does for any lost reply; it must not end the process.
      const reply = (answer: WireReply<unknown>, signature?: string) => {
        try {
          const signed = signature ? { headers: signatureHeader(signature) } : undefined;
          msg.respond(encodeWire(answer), signed);
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
        (answer) => answer && reply(answer, signAnswer(request, answer)),
        (failure: Error) => reply({ ok: false, error: failure.message }),
      );
    },
  });
}
