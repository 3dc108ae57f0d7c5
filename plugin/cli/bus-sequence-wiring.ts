import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { BusSigner, BusVerifier } from '../../adapters/nats/bus-signing.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { sequenceValuesKv } from '../../adapters/nats/sequence-values-kv.js';
import { advanceSequences, primarySequences } from '../../adapters/postgres/setup/sequence-sync.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { BusSettings } from '../ports/packet-bus.js';
import type { ReplicaPosition } from '../replica/replica-target.js';
import { heldSequences } from '../sidecar/sequence-copier.js';
import { applySequences, publishSequences, type SequenceRelay } from '../sidecar/sequence-relay.js';
import { exitOnBusLost } from '../support/exit-on-bus-lost.js';

/**
 * `lockstep run` with `bus`: the primary's sequence values to the bus every
 * `sequenceSyncMs` while `active()`, over a connection of their own, made
 * when first needed (a bus down at start delays nothing).
 */
export function startSequencePublishing(
  config: LockstepConfig,
  bus: BusSettings,
  active: () => boolean,
  log: Logger,
  signer: BusSigner,
): SequenceRelay {
  let nc: Promise<NatsConnection> | null = null;
  const connection = () =>
    (nc ??= connectBus(bus, `lockstep-sequences-${config.slot}`, {
      watch: exitOnBusLost(log),
    }).catch((error: unknown) => {
      nc = null;
      throw error;
    }));
  let holding = false;
  const relay = publishSequences(
    {
      bus: sequenceValuesKv(connection, bus, { signer }),
      everyMs: config.sequenceSyncMs,
      log,
      node: 'primary',
    },
    async () => {
      const { values, held } = await primarySequences(
        config.primary,
        config.publication,
        config.controlTimeoutMs,
      );
      // Warned of once per run of periods that hold some (as the in-process copy does).
      if (held.length > 0) {
        const fields = { node: 'primary', err: heldSequences(held), event: 'sequence-sync-failed' };
        if (holding) log.debug(fields, 'sequences held by an open transaction: read later');
        else log.warn(fields, 'sequences held by an open transaction: read later');
      }
      holding = held.length > 0;
      return values;
    },
    active,
  );
  return {
    stop: async () => {
      await relay.stop();
      await nc?.then((c) => c.close()).catch(() => undefined);
    },
  };
}

/**
 * `lockstep agent`: the replica's sequences moved up to the values on the bus, every
 * `sequenceSyncMs`, and again after the agent applied packets (its position moved).
 */
export function startSequenceApplying(
  config: LockstepConfig,
  bus: BusSettings,
  nc: NatsConnection,
  replica: ReplicaConfig,
  log: Logger,
  verifier: BusVerifier,
  agent: { readonly current: { readonly position: ReplicaPosition | null } | null },
): SequenceRelay {
  return applySequences(
    {
      bus: sequenceValuesKv(async () => nc, bus, { verifier, log }),
      everyMs: config.sequenceSyncMs,
      log,
      node: replica.name,
    },
    (values) => advanceSequences(replica.url, values, config.controlTimeoutMs),
    () => agent.current?.position?.version ?? null,
  );
}
