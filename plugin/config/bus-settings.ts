import type { BusSettings } from '../ports/packet-bus.js';
import { packetStreamName, packetSubject } from '../protocol/packet-bus-names.js';
import type { LockstepConfig } from './config-schema.js';

const SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const BYTES = { MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 } as const;

/** The bus settings of `config`, or null when it has no `bus` (everything runs in one process). */
export function busSettings(config: {
  // The publisher alone reads serverSyncInterval (serverSyncIntervalMs): settings need not carry it.
  readonly bus?: Omit<NonNullable<LockstepConfig['bus']>, 'serverSyncInterval'> | undefined;
  readonly slot: string;
}): BusSettings | null {
  const { bus, slot } = config;
  if (!bus) return null;
  const age = /^(\d+)\s*([smhd])$/.exec(bus.maxAge);
  const size = /^(\d+)\s*(MB|GB|TB)$/.exec(bus.maxBytes);
  if (!age || !size) throw new Error('bus.maxAge or bus.maxBytes was not validated');
  return {
    servers: bus.url.split(',').map((url) => url.trim()),
    stream: packetStreamName(slot, bus.stream),
    subject: packetSubject(slot),
    replicas: bus.replicas,
    maxAgeMs: Number(age[1]) * SECONDS[age[2] as keyof typeof SECONDS] * 1000,
    maxBytes: Number(size[1]) * BYTES[size[2] as keyof typeof BYTES],
    ...(bus.signingKeyFile ? { signingKeyFile: bus.signingKeyFile } : {}),
    ...(bus.verifyKeyFile ? { verifyKeyFile: bus.verifyKeyFile } : {}),
  };
}

/**
 * How long the bus servers may hold an acknowledged message unsynced (ms), from
 * `bus.serverSyncInterval`: 0 for `always`; the default, 2 min, is nats-server's.
 */
export function serverSyncIntervalMs(
  bus: { readonly serverSyncInterval?: string } | undefined,
): number {
  const text = bus?.serverSyncInterval ?? '2m';
  if (text === 'always') return 0;
  const interval = /^(\d+)\s*([smh])$/.exec(text);
  if (!interval) throw new Error('bus.serverSyncInterval was not validated');
  return Number(interval[1]) * SECONDS[interval[2] as keyof typeof SECONDS] * 1000;
}

/** Hides every user, password and token of NATS URLs (`nats://tok@h`: a token is the user part). */
export function redactBusUrl(text: string): string {
  // Up to the last `@` before the host: a password may hold a raw `@`.
  return text.replace(/\b(nats|tls):\/\/[^\s,/]*@/gi, '$1://***@');
}
