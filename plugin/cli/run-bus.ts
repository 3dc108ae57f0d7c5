import type { LockstepConfig } from '../config/config-schema.js';
import type { BusSettings } from '../ports/packet-bus.js';
import type { BusRunOrigin, BusRunState } from './bus-publisher-endpoints.js';
import { exitOnSignalWhileStarting, primaryReady } from './run-command.js';

/**
 * `lockstep run` with `bus`: publishes the primary's packets to the bus (the
 * agents apply them beside each replica) and runs two-phase rounds with the
 * agents over NATS requests; returns when stopped. Its endpoints answer from
 * the start, as in process (bus-publisher-endpoints.ts).
 */
export async function runBusPublisher(
  config: LockstepConfig,
  bus: BusSettings,
  origin: BusRunOrigin,
): Promise<void> {
  // A key that is missing or unreadable stops the start, before anything is published.
  const signer = (await import('../../adapters/nats/bus-signing.js')).loadBusSigner(bus);
  const [
    { createLogger },
    { migrateControlSchema },
    { createBusPublisher, faultFromEnvironment },
    { StreamLock },
    { createBusRounds },
    { startSequencePublishing },
    { busPublisherEndpoints },
  ] = await Promise.all([
    import('../sidecar/logger.js'),
    import('../../adapters/postgres/control/control-schema.js'),
    import('../sidecar/create-sidecar.js'),
    import('../../adapters/postgres/control/stream-lock.js'),
    import('./bus-round-wiring.js'),
    import('./bus-sequence-wiring.js'),
    import('./bus-publisher-endpoints.js'),
  ]);
  const log = createLogger(config.log.level);
  // The endpoints answer (/readyz: starting) while the primary is waited for.
  const run: BusRunState = { publisher: null, rounds: null, stopping: false };
  const serving = busPublisherEndpoints(config, run, origin, log);
  const starting = exitOnSignalWhileStarting();
  await primaryReady(config.primary, log, (node, url) =>
    migrateControlSchema(node, url, config.controlTimeoutMs),
  );
  const fault = faultFromEnvironment(config);
  const lock = new StreamLock(config.primary, config.slot, 'coordinator', config.controlTimeoutMs);
  const rounds = await createBusRounds(
    config,
    { bus, signer },
    lock,
    log,
    () => run.publisher?.snapshot().paused ?? false,
    fault,
  );
  const publisher = createBusPublisher(config, bus, log, fault, {
    lock,
    onTwoPhasePacket: (packet) => rounds.offer(packet),
  });
  run.publisher = publisher;
  run.rounds = rounds;
  const endpoints = await serving;
  // Replicas' sequences follow the primary's through the bus (the agents move them).
  const sequences = startSequencePublishing(config, bus, () => lock.held, log, signer);
  const stopped = new Promise<void>((resolve) => {
    starting.started((signal) => {
      log.info({ signal }, 'stopping');
      run.stopping = true;
      setTimeout(() => process.exit(0), 9_000).unref();
      // Rounds first: a decided round is finished before the lock goes with the publisher.
      void rounds
        .stop()
        .then(() => sequences.stop())
        .then(() => publisher.stop())
        .then(() => endpoints?.close())
        .then(resolve, resolve);
    });
  });
  if ((await publisher.start()) && !run.stopping) {
    await rounds.start();
    log.info(
      { slot: config.slot, stream: bus.stream, event: 'running' },
      'lockstep is publishing to the bus',
    );
  }
  await stopped;
  log.info({ event: 'stopped' }, 'stopped');
  process.exit();
}
