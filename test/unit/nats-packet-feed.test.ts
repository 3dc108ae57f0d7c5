import type { ConsumerMessages, ConsumerNotification, JsMsg } from '@nats-io/jetstream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  FeedRewoundError,
  FeedSilentError,
  FeedStalledError,
  NatsPacketFeed,
} from '../../adapters/nats/nats-packet-feed.js';
import type { PacketSignatureCheck } from '../../adapters/nats/packet-signature-check.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { numberedRelationWithOid, onePhasePacket } from '../support/bus-packets.js';

/** A consumer the test drives: `delivered` comes first, then nothing; notifications are pushed by hand. */
function fakeMessages(delivered: JsMsg[] = []): {
  messages: ConsumerMessages;
  notify(n: ConsumerNotification): void;
} {
  const waiting: ((n: IteratorResult<ConsumerNotification>) => void)[] = [];
  const status: AsyncIterable<ConsumerNotification> = {
    [Symbol.asyncIterator]: () => ({
      next: () => new Promise((resolve) => waiting.push(resolve)),
    }),
  };
  const messages = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        const value = delivered.shift();
        return value
          ? Promise.resolve({ value, done: false })
          : new Promise<IteratorResult<JsMsg>>(() => {});
      },
    }),
    status: () => status,
    stop: () => {},
  } as unknown as ConsumerMessages;
  return {
    messages,
    notify: (n) => waiting.shift()?.({ value: n, done: false }),
  };
}

/** Messages never come here: nothing is checked. */
const TRUSTING = { check: () => undefined } as unknown as PacketSignatureCheck;

const HEARTBEAT = {
  type: 'heartbeat',
  lastConsumerSequence: 0,
  lastStreamSequence: 0,
} as ConsumerNotification;

/** Starts a read on `feed`, then heartbeats every 500 ms `times` times; whether the read settled by then. */
async function readWhileHeartbeating(
  feed: NatsPacketFeed,
  notify: (n: ConsumerNotification) => void,
  times: number,
): Promise<() => boolean> {
  let settled = false;
  feed.next().then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < times; i++) {
    await vi.advanceTimersByTimeAsync(500);
    notify(HEARTBEAT);
  }
  return () => settled;
}

/** Starts a read on `feed` and heartbeats until it fails with `kind`; the failed read. */
async function failsWhileHeartbeating(
  feed: NatsPacketFeed,
  notify: (n: ConsumerNotification) => void,
  kind: new (...args: never[]) => Error,
): Promise<{ read: Promise<unknown> }> {
  const read = feed.next();
  const failed = expect(read).rejects.toBeInstanceOf(kind);
  for (let i = 0; i < 4; i++) {
    await vi.advanceTimersByTimeAsync(500);
    notify(HEARTBEAT);
  }
  await failed;
  // Wrapped: an async function returning the rejected read would reject itself.
  return { read };
}

/** Message `seq` of the stream, stored at `storedAt` (ms), holding one packet. */
function storedMessage(seq: number, storedAt: number): JsMsg {
  const part = onePhasePacket(1, [
    { kind: 'insert', relation: numberedRelationWithOid(16384), row: ['1', 'x'] },
  ]);
  return {
    seq,
    timestampNanos: BigInt(storedAt) * 1_000_000n + 654_321n,
    headers: undefined,
    data: encodePacketPart(part),
  } as unknown as JsMsg;
}

/** A feed whose consumer starts at sequence 12595 (delivering `delivered`) while the stream's leader says it ends at `last`. */
function feedBefore(last: number, storedAt = 0, delivered: JsMsg[] = []) {
  const { messages, notify } = fakeMessages(delivered);
  const end = vi.fn(async () => ({ sequence: last, storedAt }));
  const feed = new NatsPacketFeed(messages, 'r1', TRUSTING, async () => true, 1_000, {
    start: 12_595,
    end,
  });
  return { feed, notify, end };
}

describe('NatsPacketFeed', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fails a read once the consumer gave no sign for the silence bound, after onSilent', async () => {
    const { messages } = fakeMessages();
    const onSilent = vi.fn(async () => true);
    const feed = new NatsPacketFeed(messages, 'r1', TRUSTING, onSilent, 1_000);
    const read = feed.next();
    const failed = expect(read).rejects.toBeInstanceOf(FeedSilentError);
    await vi.advanceTimersByTimeAsync(1_000);
    await failed;
    expect(onSilent).toHaveBeenCalledOnce();
  });

  it('waits on as long as heartbeats come', async () => {
    const { messages, notify } = fakeMessages();
    const feed = new NatsPacketFeed(messages, 'r1', TRUSTING, async () => true, 1_000);
    const settled = await readWhileHeartbeating(feed, notify, 10);
    expect(settled()).toBe(false);
    // Then silence: the read fails.
    await vi.advanceTimersByTimeAsync(1_500);
    expect(settled()).toBe(true);
  });

  it('fails a read when the consumer heartbeats but delivers nothing the stream holds', async () => {
    const { feed, notify, end } = feedBefore(14_687);
    const { read } = await failsWhileHeartbeating(feed, notify, FeedStalledError);
    await expect(read).rejects.toThrow(/sequences 12595\.\.14687/);
    expect(end).toHaveBeenCalled();
  });

  it('waits on while heartbeats come and the stream holds nothing past the start', async () => {
    const { feed, notify, end } = feedBefore(12_594);
    const settled = await readWhileHeartbeating(feed, notify, 10);
    expect(settled()).toBe(false);
    // Asked about once per bound of idleness, not on every check.
    expect(end.mock.calls.length).toBeGreaterThanOrEqual(4);
    expect(end.mock.calls.length).toBeLessThanOrEqual(5);
  });

  it('fails a read when the stream ends before what the consumer delivered (made anew)', async () => {
    // A power loss of the NATS nodes: the stream is back with 40 messages, the consumer waits at 12595.
    const { feed, notify } = feedBefore(40);
    const { read } = await failsWhileHeartbeating(feed, notify, FeedRewoundError);
    await expect(read).rejects.toThrow(/ends at sequence 40, before sequence 12594/);
  });

  it('fails a read when the stream ends at the message delivered but another was stored there', async () => {
    // Made anew and grown back to the same sequence: the consumer would wait at 12596 for ever.
    const { feed, notify } = feedBefore(12_595, 1_700_000_000_999, [
      storedMessage(12_595, 1_700_000_000_123),
    ]);
    await feed.next();
    const { read } = await failsWhileHeartbeating(feed, notify, FeedRewoundError);
    await expect(read).rejects.toThrow(/message 12595 is not the one the consumer delivered/);
  });

  it('waits on when the stream ends at the message delivered, stored then', async () => {
    const { feed, notify, end } = feedBefore(12_595, 1_700_000_000_123, [
      storedMessage(12_595, 1_700_000_000_123),
    ]);
    await feed.next();
    const settled = await readWhileHeartbeating(feed, notify, 10);
    expect(settled()).toBe(false);
    expect(end).toHaveBeenCalled();
  });
});
