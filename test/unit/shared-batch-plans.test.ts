import { describe, expect, it } from 'vitest';
import { SharedBatchPlans } from '../../adapters/postgres/apply/shared-batch-plans.js';
import type { Change } from '../../plugin/protocol/index.js';

const packet = (): Change[] => [{ kind: 'message', prefix: 'lockstep.test', content: '' }];

describe('SharedBatchPlans', () => {
  it('builds a batch once for every replica that applies the very same packets', () => {
    const plans = new SharedBatchPlans(2);
    const batch = [packet(), packet()];
    let builds = 0;
    const build = () => {
      builds++;
      return [];
    };
    const first = plans.planOf(batch, build);
    // Another replica's agent makes its own array of the same packet parts.
    expect(plans.planOf([...batch], build)).toBe(first);
    expect(builds).toBe(1);
  });

  it('builds again for equal-looking but different packets, another cut, or a forgotten batch', () => {
    const plans = new SharedBatchPlans(1);
    const [a, b, c] = [packet(), packet(), packet()];
    let builds = 0;
    const build = () => {
      builds++;
      return null;
    };
    plans.planOf([a, b], build);
    plans.planOf([a, packet()], build); // same content, another packet
    plans.planOf([a], build); // another cut
    plans.planOf([c], build); // pushes [a] out (keeps one)
    plans.planOf([a], build);
    expect(builds).toBe(5);
  });

  it('forgets a plan once every replica took it, not holding its rows', () => {
    const plans = new SharedBatchPlans(2);
    const batch = [packet()];
    const part = packet();
    let builds = 0;
    const build = () => {
      builds++;
      return [];
    };
    const run = () => {
      builds++;
      return { count: 1, values: [Buffer.from('1')] };
    };
    for (let replica = 0; replica < 2; replica++) {
      plans.planOf(batch, build);
      plans.runOf(part, 0, run);
    }
    expect(builds).toBe(2);
    // A replica asking again (a retried batch) gets it built anew: nothing kept it.
    plans.planOf(batch, build);
    plans.runOf(part, 0, run);
    expect(builds).toBe(4);
  });

  it('keeps nothing when it serves one replica alone', () => {
    const plans = new SharedBatchPlans(0);
    const batch = [packet()];
    let builds = 0;
    const build = () => {
      builds++;
      return [];
    };
    plans.planOf(batch, build);
    plans.planOf(batch, build);
    expect(builds).toBe(2);
  });

  it('encodes a run of inserts of a large packet part once per part and start', () => {
    const plans = new SharedBatchPlans(2);
    const part = packet();
    let builds = 0;
    const build = () => {
      builds++;
      return { count: 1, values: [Buffer.from('1')] };
    };
    const first = plans.runOf(part, 0, build);
    expect(plans.runOf(part, 0, build)).toBe(first);
    plans.runOf(part, 5, build); // another run of the same part
    plans.runOf(packet(), 0, build); // another part
    expect(builds).toBe(3);
    const alone = new SharedBatchPlans(0);
    alone.runOf(part, 0, build);
    alone.runOf(part, 0, build);
    expect(builds).toBe(5);
  });
});
