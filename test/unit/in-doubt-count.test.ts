import { describe, expect, it } from 'vitest';
import { countInDoubt } from '../../plugin/coordinator/in-doubt-count.js';
import type { PhaseTwoNode } from '../../plugin/ports/phase-two-node.js';

/** A node whose listing holds `gids` (ages in s), or fails when `gids` is null. */
function node(name: string, gids: Array<[string, number]> | null): PhaseTwoNode {
  return {
    node: name,
    list: async () => {
      if (gids === null) throw new Error(`${name} is down`);
      return gids.map(([gid, ageSeconds]) => ({
        gid,
        ageSeconds,
        preparedAt: new Date().toISOString(),
        kind: 'stream' as const,
      }));
    },
    commit: async () => undefined,
    rollback: async () => undefined,
    close: async () => undefined,
  };
}

describe('countInDoubt', () => {
  it('counts what the reachable nodes hold when one cannot be listed, leaving out the round in flight', async () => {
    const nodes = [
      node('primary', [['g7', 90]]),
      node('r1', null),
      node('r2', [
        ['g7', 90],
        ['g9', 3],
      ]),
    ];
    expect(await countInDoubt(nodes, 's', 'g9')).toEqual({ count: 2, oldestSeconds: 90 });
  });

  it('fails only when no node could be listed', async () => {
    await expect(
      countInDoubt([node('r1', null), node('r2', null)], 's', undefined),
    ).rejects.toThrow('r1 is down');
    expect(await countInDoubt([], 's', undefined)).toEqual({ count: 0, oldestSeconds: 0 });
  });
});
