import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BusSigner,
  type BusVerifier,
  loadBusSigner,
  loadBusVerifier,
} from '../../adapters/nats/bus-signing.js';
import { requestSignature } from '../../adapters/nats/round-requests.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';

/** The bus key pair of this test run: PEM files, as `bus.signingKeyFile` and `bus.verifyKeyFile` take them. */
export interface BusKeyFiles {
  readonly signingKeyFile: string;
  readonly verifyKeyFile: string;
}

let made: BusKeyFiles | null = null;

/** One Ed25519 key pair per test run, written once to a directory of its own. */
export function busKeyFiles(): BusKeyFiles {
  if (made) return made;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bus-keys-'));
  const signingKeyFile = path.join(dir, 'bus-signing.pem');
  const verifyKeyFile = path.join(dir, 'bus-verify.pem');
  writeFileSync(signingKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  writeFileSync(verifyKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  made = { signingKeyFile, verifyKeyFile };
  return made;
}

/** Signs as `lockstep run` does, with this run's key. */
export function testBusSigner(): BusSigner {
  signer ??= loadBusSigner(busKeyFiles() as unknown as BusSettings);
  return signer;
}

let signer: BusSigner | null = null;

/** Verifies as `lockstep agent` does, with this run's public key. */
export function testBusVerifier(): BusVerifier {
  return loadBusVerifier({ verifyKeyFile: busKeyFiles().verifyKeyFile } as BusSettings);
}

/** A request to an agent as `lockstep run` sends it: `data` on `subject`, signed with this run's key. */
export function signedRequest(subject: string, data: Uint8Array) {
  return { data, headers: requestSignature(testBusSigner(), subject, data) };
}
