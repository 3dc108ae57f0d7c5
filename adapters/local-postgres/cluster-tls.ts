import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chownToServerUser } from './os-user.js';

/** A certificate authority made for a test run. */
export interface TestAuthority {
  /** The CA certificate: what a client's `sslrootcert` names. */
  readonly certFile: string;
  readonly keyFile: string;
}

/** EC keys: made in milliseconds (RSA keys cost CPU the other test workers need). */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates a CA (certificate and key) in `dir`, valid for two days. */
export function createTestAuthority(dir: string, name = 'lockstep-test-ca'): TestAuthority {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  openssl([
    'req',
    '-x509',
    '-new',
    ...NEW_KEY,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile };
}

/**
 * A server certificate signed by `ca` for `localhost` and 127.0.0.1 (the
 * clusters' address), so `sslmode=verify-full` checks out against either name.
 */
function createServerCertificate(dir: string, ca: TestAuthority): { cert: string; key: string } {
  const key = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const cert = path.join(dir, 'server.crt');
  const extensions = path.join(dir, 'server.ext');
  writeFileSync(
    extensions,
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  openssl(['req', '-new', ...NEW_KEY, '-subj', '/CN=localhost', '-keyout', key, '-out', csr]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-days',
    '2',
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-extfile',
    extensions,
    '-out',
    cert,
  ]);
  return { cert, key };
}

/**
 * Makes a cluster TLS-only before it starts: a CA made for it (in `dir`), a
 * server certificate it signed, `ssl = on`, and a pg_hba.conf that takes TCP
 * connections only over TLS (`hostssl`) and rejects the rest (`hostnossl …
 * reject`). `hba` lines come first (e.g. a role that must give a password).
 * Returns the CA, for clients' `sslrootcert`.
 */
export function makeTlsOnly(
  dir: string,
  dataDir: string,
  hba: readonly string[] = [],
): TestAuthority {
  const ca = createTestAuthority(dir);
  const server = createServerCertificate(dir, ca);
  // The server reads its key as its own OS user and refuses a key others can read.
  for (const [from, to] of [
    [server.cert, 'server.crt'],
    [server.key, 'server.key'],
  ] as const) {
    copyFileSync(from, path.join(dataDir, to));
    chmodSync(path.join(dataDir, to), 0o600);
    chownToServerUser(path.join(dataDir, to));
  }
  appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    "\n# TLS only (lockstep test harness)\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
  );
  writeFileSync(
    path.join(dataDir, 'pg_hba.conf'),
    [
      ...hba,
      'local all all trust',
      'hostnossl all all 0.0.0.0/0 reject',
      'hostnossl all all ::/0 reject',
      'hostssl all all 127.0.0.1/32 trust',
      'hostssl replication all 127.0.0.1/32 trust',
      '',
    ].join('\n'),
  );
  chownToServerUser(path.join(dataDir, 'pg_hba.conf'));
  return ca;
}
