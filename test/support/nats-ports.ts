import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '../../adapters/local-postgres/run-directory.js';

/**
 * NATS test servers listen on ports below the kernel's ephemeral range
 * (32768–60999 here): the ports Postgres test servers and sidecars get from
 * the kernel (port 0), and the local ports of outgoing connections, are all
 * in that range, so they cannot take a NATS port. Parallel NATS clusters
 * reserve their ports with a file each, made exclusively.
 */
const FIRST = 20_000;
const LAST = 32_000;
const RESERVATIONS = path.join(os.tmpdir(), 'lockstep-nats-ports');

function owner(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return 0;
  }
}

/** Reserves one port for this process; false when another live process holds it. */
function reserve(port: number): boolean {
  const file = path.join(RESERVATIONS, String(port));
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = owner(file);
      // A reservation of a process that died (or a file half written) is taken over.
      if (pid > 0 && isAlive(pid)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

/** `count` ports reserved for this process until {@link releasePorts}. */
export function reservePorts(count: number): number[] {
  mkdirSync(RESERVATIONS, { recursive: true });
  const ports: number[] = [];
  let port = FIRST + Math.floor(Math.random() * (LAST - FIRST));
  for (let tried = 0; ports.length < count; tried++) {
    if (tried > LAST - FIRST) throw new Error('NATS test cluster: no port left to reserve');
    port = port >= LAST ? FIRST : port + 1;
    if (reserve(port)) ports.push(port);
  }
  return ports;
}

export function releasePorts(ports: readonly number[]): void {
  for (const port of ports) {
    const file = path.join(RESERVATIONS, String(port));
    if (owner(file) === process.pid) rmSync(file, { force: true });
  }
}
