import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as signBytes,
  verify as verifyBytes,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';

/** How to make the key pair; the fix of every missing or unreadable key. */
const KEY_COMMANDS =
  'openssl genpkey -algorithm ed25519 -out bus-signing.pem && openssl pkey -in bus-signing.pem -pubout -out bus-verify.pem';

/** Signs what `lockstep run` publishes (Ed25519: only its holder can). */
export class BusSigner {
  constructor(private readonly key: KeyObject) {}

  /** The base64 signature of `bytes`. */
  sign(bytes: Uint8Array): string {
    return signBytes(null, bytes, this.key).toString('base64');
  }

  /** The verifier of its own signatures. */
  verifier(): BusVerifier {
    return new BusVerifier(createPublicKey(this.key));
  }
}

/** Checks signatures with the public key alone: an agent's host cannot sign. */
export class BusVerifier {
  constructor(private readonly key: KeyObject) {}

  /** Whether `signature` (base64; absent: not signed) is the key's over `bytes`. */
  verify(bytes: Uint8Array, signature: string | undefined): boolean {
    if (!signature) return false;
    try {
      return verifyBytes(null, bytes, this.key, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }
}

/** Reads the key in `file` with `parse`; errors name the file and setting, never the content. */
function readKey(
  file: string | undefined,
  setting: string,
  what: string,
  parse: (pem: string) => KeyObject,
): KeyObject {
  if (!file)
    throw new LockstepError({
      node: 'bus',
      problem: `${setting} is not set: ${what} (with bus, packets and requests are signed)`,
      fix: `make a key pair: ${KEY_COMMANDS}; set bus.signingKeyFile for lockstep run, migrate and exec, bus.verifyKeyFile for lockstep agent`,
      setting,
    });
  let key: KeyObject;
  try {
    key = parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'not a PEM key';
    throw new LockstepError({
      node: 'bus',
      problem: `cannot read ${what} from ${setting} "${file}" (${reason})`,
      fix: `point ${setting} at a readable PEM file made by: ${KEY_COMMANDS}`,
      setting,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new LockstepError({
      node: 'bus',
      problem: `${setting} "${file}" holds a ${key.asymmetricKeyType} key, not an Ed25519 one`,
      fix: `make an Ed25519 key pair: ${KEY_COMMANDS}`,
      setting,
    });
  return key;
}

/** The signer of `lockstep run` (and migrate, exec): `bus.signingKeyFile`'s private key. */
export function loadBusSigner(settings: BusSettings): BusSigner {
  return new BusSigner(
    readKey(
      settings.signingKeyFile,
      'bus.signingKeyFile',
      'the private key that signs packets and requests',
      (pem) => createPrivateKey(pem),
    ),
  );
}

/** The verifier of an agent: `bus.verifyKeyFile`'s public key, else the one of `bus.signingKeyFile`. */
export function loadBusVerifier(settings: BusSettings): BusVerifier {
  if (!settings.verifyKeyFile && settings.signingKeyFile) return loadBusSigner(settings).verifier();
  return new BusVerifier(
    readKey(
      settings.verifyKeyFile,
      'bus.verifyKeyFile',
      'the public key that checks packets and requests',
      (pem) => createPublicKey(pem),
    ),
  );
}
