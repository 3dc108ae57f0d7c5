import type { ConsumerMessages, ConsumerNotification, JsMsg } from '@nats-io/jetstream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FeedSilentError, NatsPacketFeed } from '../../adapters/nats/nats-packet-feed.js';

/** A consumer the test drives: messages never come; notifications are pushed by hand. */
function fakeMessages(): { messages: ConsumerMessages; notify(n: ConsumerNotification): void } {
  const waiting: ((n: IteratorResult<ConsumerNotification>) => void)[] = [];
  const status: AsyncIterable<ConsumerNotification> = {
    [Symbol.asyncIterator]: () => ({
      next: () => new Promise((resolve) => waiting.push(resolve)),
    }),
  };
  const messages = {
    [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<JsMsg>>(() => {}) }),
    status: () => status,
    stop: () => {},
  } as unknown as ConsumerMessages;
  return {
    messages,
    notify: (n) => waiting.shift()?.({ value: n, done: false }),
  };
}

const HEARTBEAT = {
  type: 'heartbeat',
  lastConsumerSequence: 0,
  lastStreamSequence: 0,
} as ConsumerNotification;

describe('NatsPacketFeed', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fails a read once the consumer gave no sign for the silence bound, after onSilent', async () => {
    const { messages } = fakeMessages();
    const onSilent = vi.fn(async () => true);
    const feed = new NatsPacketFeed(messages, 'r1', onSilent, 1_000);
    const read = feed.next();
    const failed = expect(read).rejects.toBeInstanceOf(FeedSilentError);
    await vi.advanceTimersByTimeAsync(1_000);
    await failed;
    expect(onSilent).toHaveBeenCalledOnce();
  });

  it('waits on as long as heartbeats come', async () => {
    const { messages, notify } = fakeMessages();
    const feed = new NatsPacketFeed(messages, 'r1', async () => true, 1_000);
    let settled = false;
    feed.next().then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(500);
      notify(HEARTBEAT);
    }
    expect(settled).toBe(false);
    // Then silence: the read fails.
    await vi.advanceTimersByTimeAsync(1_500);
    expect(settled).toBe(true);
  });
});
