import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import {
  type ConnectionKeywords,
  ConnectionStringError,
} from '../../../plugin/ports/connection-string.js';

/** libpq's sslmode values under which TLS is optional, and which way is tried first. */
export type OptionalTls = 'prefer' | 'allow';

/** What `pg` gets for a node's TLS. */
export interface TlsSettings {
  /** `false`: no TLS; otherwise Node's TLS options. */
  readonly ssl: false | ConnectionOptions;
  /** Set when the connection may go on without TLS (see LibpqClient). */
  readonly optional?: OptionalTls;
}

/** The host name is not checked (verify-ca, and require with a root certificate, as libpq does). */
const anyHostName = (): undefined => undefined;

/**
 * libpq's sslmode meanings as Node TLS options (the same mapping as
 * pg-connection-string's `useLibpqCompat`, plus allow and prefer falling back
 * to no TLS, and `sslrootcert=system`):
 * - disable: no TLS; allow / prefer: TLS without verification when used;
 * - require: encrypted, the certificate not checked — unless a root
 *   certificate is given, then like verify-ca (libpq's rule);
 * - verify-ca: the chain must lead to `sslrootcert`;
 * - verify-full: also the host name; without `sslrootcert` (or with
 *   `system`) against the system's CAs.
 * Certificate files are read at each connect, so a renewed file is used.
 */
export function tlsSettings(keywords: ConnectionKeywords): TlsSettings {
  const mode = keywords.sslmode ?? 'prefer';
  if (mode === 'disable') return { ssl: false };
  const client: ConnectionOptions = {};
  if (keywords.sslcert) client.cert = readTlsFile('sslcert', keywords.sslcert);
  if (keywords.sslkey) client.key = readTlsFile('sslkey', keywords.sslkey);
  const root = keywords.sslrootcert;
  const ca = root && root !== 'system' ? readTlsFile('sslrootcert', root) : undefined;
  switch (mode) {
    case 'allow':
    case 'prefer':
      return { ssl: { ...client, rejectUnauthorized: false }, optional: mode };
    case 'require':
      return ca
        ? { ssl: { ...client, ca, checkServerIdentity: anyHostName } }
        : { ssl: { ...client, rejectUnauthorized: false } };
    case 'verify-ca':
      if (!ca) throw new ConnectionStringError('sslmode=verify-ca needs sslrootcert');
      return { ssl: { ...client, ca, checkServerIdentity: anyHostName } };
    case 'verify-full':
      return { ssl: ca ? { ...client, ca } : client };
    default:
      throw new ConnectionStringError(`unknown sslmode`);
  }
}

function readTlsFile(keyword: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConnectionStringError(
      `cannot read ${keyword} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}
