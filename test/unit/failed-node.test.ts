import { describe, expect, it } from 'vitest';
import { scrubbedError } from '../../adapters/postgres/connection/connection-url.js';
import { failedNode, stampFailedNode } from '../../plugin/ports/failed-node.js';

describe('the failed node stamped on an error', () => {
  it('survives the scrubbing of credentials from the message', () => {
    const url = 'postgres://app:s3cret@db:5432/shop';
    const error = stampFailedNode(new Error(`auth failed for ${url}`), 'eu');
    const scrubbed = scrubbedError(error, url);
    expect(scrubbed.message).not.toContain('s3cret');
    expect(failedNode(scrubbed)).toBe('eu');
    expect(failedNode(scrubbedError(new Error('no stamp'), url))).toBeUndefined();
  });

  it('keeps the first node stamped, and leaves a frozen error unnamed instead of throwing', () => {
    expect(failedNode(stampFailedNode(stampFailedNode(new Error('x'), 'eu'), 'us'))).toBe('eu');
    const frozen = Object.freeze(new Error('frozen'));
    expect(() => stampFailedNode(frozen, 'eu')).not.toThrow();
    expect(failedNode(frozen)).toBeUndefined();
  });
});
