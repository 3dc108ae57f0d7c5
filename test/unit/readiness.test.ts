import { describe, expect, it } from 'vitest';
import { toLsn } from '../../plugin/protocol/index.js';
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
  const slot = (walStatus: 'reserved' | 'lost') => ({
    name: 'lockstep',
    exists: true,
    walStatus,
    safeWalBytes: null,
    retainedBytes: 0,
    confirmedLsn: toLsn('0/100'),
  });

  it('is ready only while active with a slot that can stream', () => {
    expect(busPublisherReadiness({ role: 'active' }, slot('reserved'), false)).toEqual({
      ready: true,
      role: 'active',
      reasons: [],
    });
    const lost = busPublisherReadiness({ role: 'active' }, slot('lost'), false);
    expect(lost).toMatchObject({ ready: false, role: 'active' });
    expect(lost.reasons.join()).toMatch(/invalidated.*attach --resync/);
  });

  it('is not ready starting, standing by or stopping, and says why', () => {
    expect(busPublisherReadiness(null, null, false)).toMatchObject({ role: 'starting' });
    expect(busPublisherReadiness({ role: 'starting' }, null, false).ready).toBe(false);
    const standby = busPublisherReadiness({ role: 'standby' }, slot('reserved'), false);
    expect(standby).toMatchObject({ ready: false, role: 'standby' });
    expect(standby.reasons.join()).toMatch(/another publisher/);
    expect(busPublisherReadiness({ role: 'active' }, null, true)).toMatchObject({
      ready: false,
      role: 'stopping',
    });
    expect(busPublisherReadiness({ role: 'stopping' }, null, false).ready).toBe(false);
  });
});
