import { ConnectionStringError } from '../ports/connection-string.js';
import type { LockstepConfig, ParsedConfig, ReplicaConfig } from './config-schema.js';
import { resolveConnection } from './resolve-connection.js';

/** The variable naming the primary's password file; it wins over `primary.passwordFile`. */
export const PRIMARY_PASSWORD_FILE = 'LOCKSTEP_PRIMARY_PASSWORD_FILE';

/** `LOCKSTEP_REPLICA_<NAME>_PASSWORD_FILE`: a replica's password file (name upper-cased, `-` as `_`). */
export function replicaPasswordFileVariable(name: string): string {
  return `LOCKSTEP_REPLICA_${name.toUpperCase().replace(/-/g, '_')}_PASSWORD_FILE`;
}

const REPLICA_PASSWORD_FILE = /^LOCKSTEP_REPLICA_(.+)_PASSWORD_FILE$/;

/**
 * Resolves every node's connection once (resolveConnection: PG* defaults,
 * the password from its file, the string, PGPASSWORD or ~/.pgpass) into the
 * URL the adapters connect with. Returns the problems instead, each naming
 * the node's key, when any connection cannot be resolved.
 */
export function resolveNodes(
  parsed: ParsedConfig,
  env: NodeJS.ProcessEnv,
): { config: LockstepConfig; problems: string[] } {
  const problems: string[] = [];
  const resolve = (key: string, url: string, fileKey: string | undefined, variable: string) => {
    const fromVariable = env[variable] || undefined;
    try {
      return resolveConnection(url, { env, passwordFile: fromVariable ?? fileKey });
    } catch (error) {
      if (!(error instanceof ConnectionStringError)) throw error;
      problems.push(
        `${key}${fromVariable ? ` (password file from ${variable})` : ''}: ${error.message}`,
      );
      return url;
    }
  };
  const primary = typeof parsed.primary === 'string' ? { url: parsed.primary } : parsed.primary;
  const primaryUrl = resolve('primary', primary.url, primary.passwordFile, PRIMARY_PASSWORD_FILE);
  const replicas: ReplicaConfig[] = parsed.replicas.map((replica, i) => ({
    name: replica.name,
    url: resolve(
      `replicas[${i}] ("${replica.name}")`,
      replica.url,
      replica.passwordFile,
      replicaPasswordFileVariable(replica.name),
    ),
  }));
  const names = new Set(parsed.replicas.map((r) => replicaPasswordFileVariable(r.name)));
  for (const variable of Object.keys(env)) {
    if (REPLICA_PASSWORD_FILE.test(variable) && env[variable] && !names.has(variable)) {
      problems.push(`${variable}: names no replica of the configuration`);
    }
  }
  return { config: { ...parsed, primary: primaryUrl, replicas }, problems };
}
