import { execFileSync, spawnSync } from 'node:child_process';

/**
 * Postgres refuses to run as root. When the tests run as root (CI does), the
 * servers run as this unprivileged user instead (created if missing).
 */
export const SERVER_OS_USER = process.env.LOCKSTEP_PG_OS_USER ?? 'postgres';

/** True when server commands must be wrapped to drop root. */
export function runsAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Creates the server OS user when running as root and it does not exist yet. */
export function ensureServerUser(): void {
  if (!runsAsRoot()) return;
  if (spawnSync('id', ['-u', SERVER_OS_USER]).status === 0) return;
  execFileSync('useradd', [
    '--system',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    SERVER_OS_USER,
  ]);
}

/** The command line that runs `file args` as the server user. */
export function asServerUser(file: string, args: readonly string[]): [string, string[]] {
  return runsAsRoot()
    ? ['runuser', ['-u', SERVER_OS_USER, '--', file, ...args]]
    : [file, [...args]];
}

/** Gives a path to the server user (no-op when not root). */
export function chownToServerUser(target: string): void {
  if (runsAsRoot()) execFileSync('chown', ['-R', `${SERVER_OS_USER}:`, target]);
}

/** True when the server user can execute the file. */
export function serverUserCanExecute(file: string): boolean {
  const [cmd, args] = asServerUser('test', ['-x', file]);
  return spawnSync(cmd, args).status === 0;
}
