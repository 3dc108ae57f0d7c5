import { generateKeyPairSync } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { expect } from 'vitest';
import { BusSigner } from '../../adapters/nats/bus-signing.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { busKeyFiles } from './bus-keys.js';
import { BusPackets, numberedRelation } from './bus-packets.js';
import { eventually, waitForMarker } from './compare-nodes.js';
import { LockstepProcess, startAgent } from './lockstep-process.js';
import { readBusMessages } from './nats-packets.js';
import { type AttachedClusters, useAttached } from './use-attached.js';
import { useNatsCluster } from './use-nats-cluster.js';

/** The stream `lockstep run` publishes to for slot `lockstep`. */
export const STREAM = 'LOCKSTEP_LOCKSTEP';

/** What a forger appends to: one attached replica (tables t and marker) publishing to a NATS cluster. */
export interface ForgeryTarget {
  readonly nats: ReturnType<typeof useNatsCluster>;
  readonly clusters: AttachedClusters;
}

/** Sets up a {@link ForgeryTarget} for the test file; `bus` adds to its bus settings. */
export function useForgeryTarget(bus: Record<string, unknown> = {}): ForgeryTarget {
  const nats = useNatsCluster();
  const clusters = useAttached({
    replicas: 1,
    schema:
      'CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE marker (id bigserial PRIMARY KEY);',
    config: {
      get bus() {
        return { url: nats.cluster.url, replicas: 3, ...bus };
      },
    },
  });
  return { nats, clusters };
}

/** Inserts rows `from` through `to` of t on the primary, one transaction each. */
export async function insertRows(target: ForgeryTarget, from: number, to: number): Promise<void> {
  for (let id = from; id <= to; id++)
    await target.clusters.primary.query(`INSERT INTO t VALUES (${id}, ${id})`);
}

/**
 * Appends packet `version` (row 9999), encoded as lockstep does, signed with
 * a key that is not lockstep run's; at `lsn` when given. `emptied`: the
 * stream is removed and made anew (empty) first, as after a power loss.
 * Returns the sequence it was stored at.
 */
export async function forgePacket(
  target: ForgeryTarget,
  version: number,
  options: { lsn?: Lsn; emptied?: boolean } = {},
): Promise<number> {
  const url = target.nats.cluster.url;
  const settings = forgerSettings(target);
  const nc = await connectBus({ servers: [target.nats.cluster.nodeUrl(0)] }, 'test-forger');
  try {
    if (options.emptied) {
      await (await jetstreamManager(nc)).streams.delete(STREAM);
      await (await openPacketLog(settings, 'test-forger-setup')).close();
    }
    const other = new BusSigner(generateKeyPairSync('ed25519').privateKey);
    const relation = await numberedRelation(target.clusters.primary);
    const packets = new BusPackets(nc, settings, relation, other);
    await packets.publish(version, [9_999], 'one', 1, options.lsn);
  } finally {
    await nc.close();
  }
  return (await readBusMessages(url, STREAM)).at(-1)?.sequence as number;
}

/** The bus settings lockstep run publishes with on the target (its subject, stream and keys). */
function forgerSettings(target: ForgeryTarget) {
  const bus = {
    ...busKeyFiles(),
    url: target.nats.cluster.url,
    replicas: 3,
    maxAge: '7d',
    maxBytes: '10GB',
  };
  const settings = busSettings({ slot: 'lockstep', bus });
  if (!settings) throw new Error('no bus');
  return settings;
}

/**
 * Appends a message no lockstep wrote to the packet subject (`{}`, no
 * headers), as any client allowed on it can. Returns its sequence.
 */
export async function publishUnreadable(target: ForgeryTarget): Promise<number> {
  const settings = forgerSettings(target);
  const nc = await connectBus({ servers: [target.nats.cluster.nodeUrl(0)] }, 'test-forger');
  try {
    return (await jetstream(nc).publish(settings.subject, new TextEncoder().encode('{}'))).seq;
  } finally {
    await nc.close();
  }
}

/** The last packet on the bus, as its header names it. */
export async function lastPacket(target: ForgeryTarget): Promise<{ version: number; lsn: Lsn }> {
  const header = (await readBusMessages(target.nats.cluster.url, STREAM)).at(-1)?.part.header;
  if (!header) throw new Error('no packet on the bus');
  return { version: header.version, lsn: header.lsn as Lsn };
}

/**
 * Replicates rows `from` through `to` of t (lockstep run and the replica's
 * agent, `whilePublishing` run before they stop), then stops both.
 */
export async function publishRows(
  target: ForgeryTarget,
  from: number,
  to: number,
  whilePublishing: () => Promise<void> = async () => {},
): Promise<void> {
  const { configFile, primary, replicas } = target.clusters;
  const running = [
    new LockstepProcess(['run', '--config', configFile]),
    startAgent(configFile, 'replica1'),
  ];
  try {
    await insertRows(target, from, to);
    await waitForMarker(primary, replicas);
    await whilePublishing();
  } finally {
    await stopCleanly(...running);
  }
}

/** Stops `processes`, each expected to exit cleanly. */
export async function stopCleanly(...processes: LockstepProcess[]): Promise<void> {
  for (const p of processes) p.kill('SIGTERM');
  const codes = await Promise.all(processes.map((p) => p.exited));
  expect(codes).toEqual(processes.map(() => 0));
}

/** Waits until `publisher` (lockstep run) says the version it publishes after. */
export async function publishingFrom(publisher: LockstepProcess): Promise<number> {
  await eventually(async () => !!publisher.logEvent('bus-publishing'), 'publishing again');
  return publisher.logEvent('bus-publishing')?.version as number;
}
