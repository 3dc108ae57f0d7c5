import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { busKeyFiles } from './bus-keys.js';
import { defaultCliEntry } from './cli-entry.js';

/** Writes a configuration file for a primary and replicas; returns its path and a cleanup. */
export function writeConfig(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
  extra: Record<string, unknown> = {},
): { file: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-config-'));
  const file = path.join(dir, 'lockstep.json');
  rewriteConfig(file, primary, replicas, extra);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Tests confirm the slot at JetStream's ack (`serverSyncInterval: always`)
 * unless they set the interval: most wait for the slot to move, and a power
 * loss of the test's NATS servers, which the interval guards against, is not
 * what they test (bus-synced-confirm.test.ts tests it, README the default).
 */
function syncedBus(bus: unknown): { bus?: unknown } {
  if (!bus || typeof bus !== 'object' || 'serverSyncInterval' in bus) return {};
  return { bus: { ...bus, serverSyncInterval: 'always' } };
}

/** Writes (or replaces) the configuration in `file`: what a running sidecar reloads. */
export function rewriteConfig(
  file: string,
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
  extra: Record<string, unknown> = {},
): void {
  writeFileSync(
    file,
    JSON.stringify(
      {
        primary: primary.url,
        replicas: replicas.map((r) => ({ name: r.name, url: r.url })),
        tables: ['public.*'],
        http: { port: 0 },
        retry: { initialMs: 200, maxMs: 2000 },
        ...withBusKeys({ ...extra, ...syncedBus(extra.bus) }),
      },
      null,
      2,
    ),
  );
}

/** `extra` with this run's bus key pair in its `bus` (packets and requests are signed), unless it names keys itself. */
function withBusKeys(extra: Record<string, unknown>): Record<string, unknown> {
  const bus = extra.bus as Record<string, unknown> | undefined;
  if (!bus || 'signingKeyFile' in bus || 'verifyKeyFile' in bus) return extra;
  return { ...extra, bus: { ...busKeyFiles(), ...bus } };
}

/** How a command is started: from source through tsx, or a built CLI ({@link defaultCliEntry}). */
let entry: readonly string[] = defaultCliEntry();

/**
 * Makes every later command run the built CLI (`dist/lockstep.mjs`, package.json's
 * `bin`), as users run it: benchmarks use it so that tsx's transpiling does not
 * count in start-up; built-cli.test.ts passes a bundle it made itself.
 */
export function useBuiltCli(file = 'dist/lockstep.mjs', nodeFlags: readonly string[] = []): void {
  if (!existsSync(file)) throw new Error('the built CLI is missing: run `npm run build` first');
  // Node flags go on the command line: NODE_OPTIONS refuses some (--cpu-prof).
  entry = [...nodeFlags, file];
}

/** Processes started since the last {@link takeStartedProcesses}, and those still running (null: not kept). */
let started: LockstepProcess[] | null = null;

/** Keeps the processes started from now on, for a failed test's report (benches keep none). */
export function recordStartedProcesses(): void {
  started ??= [];
}

/**
 * The processes started since the last call and those still running (one a
 * `beforeAll` started serves every test of its file), in order; the ones
 * that exited are forgotten.
 */
export function takeStartedProcesses(): LockstepProcess[] {
  const taken = started ?? [];
  if (started)
    started = started.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  return taken;
}

/** A `lockstep` command run as its own process (so tests can SIGKILL it), output collected. */
export class LockstepProcess {
  readonly child: ChildProcess;
  /** stdout and stderr as they came, interleaved. */
  output = '';
  /** stdout alone (a `--json` command's document). */
  stdout = '';
  readonly exited: Promise<number | null>;
  /** The exit code once stdout and stderr are read to their end as well. */
  readonly closed: Promise<number | null>;

  constructor(
    readonly args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    started?.push(this);
    this.child = spawn(process.execPath, [...entry, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString();
      this.stdout += d.toString();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.closed = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
  }

  /** JSON log lines printed so far. */
  logLines(): Array<Record<string, unknown>> {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** The first log line whose message matches every pattern (and has `fields`), if any. */
  logged(
    patterns: RegExp | readonly RegExp[],
    fields: Record<string, unknown> = {},
  ): Record<string, unknown> | undefined {
    const all = Array.isArray(patterns) ? patterns : [patterns as RegExp];
    return this.logLines().find(
      (l) => all.every((p) => p.test(String(l.msg))) && hasFields(l, fields),
    );
  }

  /**
   * The log lines of an `event` that have `fields` (a RegExp value matches a
   * field's text): tests match what a line says in its fields, not its wording.
   */
  events(event: string, fields: Record<string, unknown> = {}): Array<Record<string, unknown>> {
    return this.logLines().filter((l) => l.event === event && hasFields(l, fields));
  }

  /** The first log line of an `event` that has `fields`, if any (see {@link events}). */
  logEvent(
    event: string,
    fields: Record<string, unknown> = {},
  ): Record<string, unknown> | undefined {
    return this.events(event, fields)[0];
  }

  /**
   * The first log line of an `event` that has `fields`, waited for up to `ms`:
   * a reply over NATS, HTTP or a database can come before the line it
   * follows has come through the process's pipe.
   */
  async untilEvent(
    event: string,
    fields: Record<string, unknown> = {},
    ms = 15_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = this.logEvent(event, fields);
      if (line) return line;
      if (Date.now() > deadline)
        throw new Error(
          `no ${event} line with ${JSON.stringify(fields, (_, v) => (v instanceof RegExp ? String(v) : v))} logged within ${ms} ms`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child.kill(signal);
  }
}

/** Whether a log line has every field given (a RegExp matches the field's text). */
function hasFields(line: Record<string, unknown>, fields: Record<string, unknown>): boolean {
  return Object.entries(fields).every(([k, v]) =>
    v instanceof RegExp ? line[k] !== undefined && v.test(String(line[k])) : line[k] === v,
  );
}

/** Runs a lockstep command to completion and returns its exit code and output (and stdout alone). */
export async function lockstep(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs?: number,
): Promise<{ code: number | null; output: string; stdout: string }> {
  const p = new LockstepProcess(args, env);
  // A command that hangs is stopped and reported with what it printed, instead of timing the test out blind.
  const timer =
    timeoutMs === undefined
      ? null
      : setTimeout(() => {
          p.output += `\n[test: lockstep ${args[0]} still running after ${timeoutMs} ms: sent SIGTERM]\n`;
          p.kill('SIGTERM');
          setTimeout(() => p.kill('SIGKILL'), 5_000).unref();
        }, timeoutMs);
  // 'close', not 'exit': the output a command printed just before exiting is all read.
  const code = await p.closed;
  if (timer) clearTimeout(timer);
  return { code, output: p.output, stdout: p.stdout };
}

/** Runs `body` while a sidecar runs on `configFile`; stops it after (SIGTERM, which must exit 0). */
export async function withSidecar(
  configFile: string,
  body: (sidecar: LockstepProcess) => Promise<void>,
): Promise<void> {
  const sidecar = new LockstepProcess(['run', '--config', configFile]);
  try {
    await body(sidecar);
  } finally {
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  }
}

/** `lockstep agent --config F --replica NAME`, as a user starts it beside a replica. */
export function startAgent(
  configFile: string,
  replica: string,
  env: NodeJS.ProcessEnv = {},
): LockstepProcess {
  return new LockstepProcess(['agent', '--config', configFile, '--replica', replica], env);
}
