import { describe, expect, it } from 'vitest';
import { pullBytes } from '../../adapters/nats/packet-consumer.js';

const MB = 1024 * 1024;

describe('the pull limits of the packet reader', () => {
  it('keep the 8 MB bound while the largest message is far smaller', () => {
    expect(pullBytes(MB).max_bytes).toBe(8 * MB);
  });

  it('always ask for room for the largest message, however large the servers allow', () => {
    for (const maxPayload of [MB, 8 * MB, 16 * MB, 64 * MB]) {
      const { max_bytes, threshold_bytes } = pullBytes(maxPayload);
      // A refill asks for what was taken since the last one: never less than one whole message.
      expect(max_bytes - threshold_bytes).toBeGreaterThan(maxPayload);
      // What is still asked for before a refill also holds one.
      expect(threshold_bytes).toBeGreaterThan(maxPayload);
    }
  });
});
