import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../plugin/config/load-config.js';
import { refuseUnknownReplicas } from '../../plugin/migrate/refuse-unknown-replicas.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';

const config = loadConfig(undefined, {
  LOCKSTEP_PRIMARY: 'postgres://p@h/db',
  LOCKSTEP_REPLICAS: 'eu=postgres://a@h/db',
  LOCKSTEP_SLOT: 'orders',
});

/** The refusal of a round whose configuration lacks `us`, served as `byAgents` says. */
function refusal(byAgents?: boolean): LockstepError {
  try {
    refuseUnknownReplicas(config, ['eu', 'us'], byAgents);
  } catch (error) {
    expect(error).toBeInstanceOf(LockstepError);
    return error as LockstepError;
  }
  throw new Error('not refused');
}

describe('a round whose configuration lacks a served replica', () => {
  it('in process, names the replica and the sidecar’s configuration', () => {
    const error = refusal();
    expect(error.node).toBe('us');
    expect(error.fix).toMatch(/^run this with the configuration the sidecar reads \(it lists us\)/);
    expect(error.fix).toMatch(/a sidecar started with that configuration forgets it/);
  });

  it('with bus, says the replica’s agent serves it and how to stop that counting', () => {
    const error = refusal(true);
    expect(error.node).toBe('us');
    expect(error.fix).toMatch(/the agents and the sidecar read \(it lists us\)/);
    expect(error.fix).toMatch(/stop its agent \(a report on the bus stops counting once stale/);
    expect(error.fix).not.toMatch(/sidecar started with that configuration/);
  });

  it('lets a round through whose configuration lists every served replica', () => {
    expect(() => refuseUnknownReplicas(config, ['eu'], true)).not.toThrow();
  });
});
