import { describe, expect, it } from 'vitest';
import {
  type BusPublisherView,
  busPublisherMetrics,
} from '../../plugin/sidecar/bus-publisher-metrics.js';
import { sample } from '../support/endpoint-client.js';

const GAUGES = ['lockstep_two_phase_in_doubt', 'lockstep_two_phase_in_doubt_oldest_seconds'];

describe('the in-doubt gauges', () => {
  it('say the count last listed, and are absent while it is unknown (not 0)', async () => {
    let view: BusPublisherView = {
      publisher: null,
      slot: null,
      twoPhase: { roundsCommitted: 0, roundsAborted: 0, held: null },
      inDoubt: { count: 2, oldestSeconds: 40 },
      replicas: null,
    };
    const registry = busPublisherMetrics(() => view);
    const gauges = async () => {
      const text = await registry.metrics();
      return GAUGES.map((name) => sample(text, name));
    };
    expect(await gauges()).toEqual([2, 40]);
    view = { ...view, inDoubt: null };
    expect(await gauges()).toEqual([null, null]);
    view = { ...view, inDoubt: { count: 0, oldestSeconds: 0 } };
    expect(await gauges()).toEqual([0, 0]);
  });
});
