import { describe, expect, it } from 'vitest';
import { pullLimits } from '../../adapters/nats/packet-consumer.js';

const MB = 1024 * 1024;

describe('the pull limits of the packet reader', () => {
  it('hold at most 32 MB of the largest messages the servers allow, in messages', () => {
    expect(pullLimits(MB).max_messages).toBe(32);
    expect(pullLimits(4 * MB).max_messages).toBe(8);
  });

  it('still pull several messages at once when the servers allow huge ones', () => {
    expect(pullLimits(64 * MB).max_messages).toBe(8);
    expect(pullLimits(64 * MB)).not.toHaveProperty('max_bytes');
  });

  it('pull again only once a quarter of the limit is left: few pull requests per message', () => {
    expect(pullLimits(MB).threshold_messages).toBe(8);
    expect(pullLimits(64 * MB).threshold_messages).toBe(2);
  });

  it('wait long on the server, with a heartbeat every second meanwhile: an idle agent seldom pulls', () => {
    expect(pullLimits(MB).expires).toBe(6_000);
    expect(pullLimits(MB).idle_heartbeat).toBe(1_000);
  });
});
