import { describe, expect, it } from 'vitest';
import { busPublisherReadiness, readiness } from '../../plugin/sidecar/readiness.js';
import type { SidecarSnapshot } from '../../plugin/sidecar/sidecar.js';

/** A sidecar in trouble: one replica halted far behind, one stale, the stream paused and held. */
function troubled(active: boolean): SidecarSnapshot {
  const replica = (name: string, state: string) => ({
    name,
    state,
    version: 1,
    lagVersions: 500,
    lagBytes: 10 * 1024 ** 3,
    lagSeconds: 3600,
    packetsApplied: 1,
    rowsApplied: 1,
    applyErrors: 40,
    commitsNotLanded: 0,
    error: `${name} is unreachable`,
  });
  return {
    active,
    streaming: false,
    paused: true,
    headVersion: 501,
    slotRetainedBytes: 10 * 1024 ** 3,
    slot: null,
    slotLost: null,
    replicas: [replica('eu', 'halted'), replica('us', 'stale')],
    twoPhase: {
      roundsCommitted: 0,
      roundsAborted: 3,
      held: { gid: 'g', from: 2, to: 2, attempts: 3, refusals: { eu: 'refused' } },
    },
    inDoubt: { count: 2, oldestSeconds: 900 },
  };
}

describe('readiness', () => {
  it('is not ready while starting, and says why', () => {
    const r = readiness(null, false);
    expect(r).toMatchObject({ ready: false, role: 'starting' });
    expect(r.reasons.join()).toMatch(/primary/);
  });

  it('is ready once running, active or standing by, whatever replication is going through', () => {
    expect(readiness(troubled(true), false)).toEqual({ ready: true, role: 'active', reasons: [] });
    expect(readiness(troubled(false), false)).toEqual({
      ready: true,
      role: 'standby',
      reasons: [],
    });
  });

  it('is not ready once stopping', () => {
    expect(readiness(troubled(true), true)).toMatchObject({ ready: false, role: 'stopping' });
    expect(readiness(null, true)).toMatchObject({ ready: false, role: 'stopping' });
  });
});

describe('readiness of a bus publisher', () => {
  it('is ready active or standing by, as in process; a lost slot is for the metrics', () => {
    expect(busPublisherReadiness({ role: 'active' }, false)).toEqual({
      ready: true,
      role: 'active',
      reasons: [],
    });
    expect(busPublisherReadiness({ role: 'standby' }, false)).toEqual({
      ready: true,
      role: 'standby',
      reasons: [],
    });
  });

  it('is not ready while starting or stopping, and says why', () => {
    expect(busPublisherReadiness(null, false)).toMatchObject({ ready: false, role: 'starting' });
    expect(busPublisherReadiness({ role: 'starting' }, false).ready).toBe(false);
    expect(busPublisherReadiness({ role: 'active' }, true)).toMatchObject({
      ready: false,
      role: 'stopping',
    });
    expect(busPublisherReadiness({ role: 'stopping' }, false).ready).toBe(false);
  });
});
