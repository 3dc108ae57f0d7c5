import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BusSigner,
  BusVerifier,
  loadBusSigner,
  loadBusVerifier,
} from '../../adapters/nats/bus-signing.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import { packetSignedBytes, requestSignedBytes } from '../../plugin/protocol/bus-signed-bytes.js';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const body = new TextEncoder().encode('\u0001body');
const headersOf =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];
const POSITION = {
  'Lockstep-Version': '7',
  'Lockstep-Part': '0',
  'Lockstep-Changes': '3',
  'Lockstep-Final': 'one',
};

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signer: new BusSigner(privateKey), verifier: new BusVerifier(publicKey) };
}

describe('the bytes signed on the bus', () => {
  it('name the subject, the sequence, every position header and then the body', () => {
    const bytes = packetSignedBytes('lockstep.s.packets', 42, headersOf(POSITION), body);
    expect(text(bytes)).toBe(
      'lockstep-packet-v1\nlockstep.s.packets\n42\nLockstep-Version:7\nLockstep-Part:0\nLockstep-Changes:3\nLockstep-Final:one\nLockstep-First:\n\u0001body',
    );
    expect(text(requestSignedBytes('lockstep.s.agent.r.commit', body))).toBe(
      'lockstep-request-v1\nlockstep.s.agent.r.commit\n\u0001body',
    );
  });

  it('differ when anything an agent trusts differs', () => {
    const base = text(packetSignedBytes('a', 1, headersOf(POSITION), body));
    const variants = [
      packetSignedBytes('b', 1, headersOf(POSITION), body),
      packetSignedBytes('a', 2, headersOf(POSITION), body),
      packetSignedBytes('a', 1, headersOf({ ...POSITION, 'Lockstep-Changes': '4' }), body),
      packetSignedBytes('a', 1, headersOf({ ...POSITION, 'Lockstep-First': '6' }), body),
      packetSignedBytes('a', 1, headersOf(POSITION), new Uint8Array([1])),
    ];
    for (const variant of variants) expect(text(variant)).not.toBe(base);
  });
});

describe('signing and verifying', () => {
  it('passes only the signer key over the same bytes', () => {
    const { signer, verifier } = keyPair();
    const bytes = packetSignedBytes('a', 1, headersOf(POSITION), body);
    const signature = signer.sign(bytes);
    expect(verifier.verify(bytes, signature)).toBe(true);
    expect(signer.verifier().verify(bytes, signature)).toBe(true);
    expect(verifier.verify(packetSignedBytes('a', 2, headersOf(POSITION), body), signature)).toBe(
      false,
    );
    expect(keyPair().verifier.verify(bytes, signature)).toBe(false);
    expect(verifier.verify(bytes, undefined)).toBe(false);
    expect(verifier.verify(bytes, 'not base64 at all!')).toBe(false);
    // A packet's signature does not pass as a request's.
    expect(verifier.verify(requestSignedBytes('a', body), signature)).toBe(false);
  });

  it('loads PEM keys, and names the setting and file (never the key) when one is wrong', () => {
    const dir = os.tmpdir();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const signing = path.join(dir, `bus-signing-${process.pid}.pem`);
    const verify = path.join(dir, `bus-verify-${process.pid}.pem`);
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(signing, pem);
    writeFileSync(verify, publicKey.export({ type: 'spki', format: 'pem' }));
    const bytes = requestSignedBytes('s', body);
    const signature = loadBusSigner({ signingKeyFile: signing } as BusSettings).sign(bytes);
    expect(loadBusVerifier({ verifyKeyFile: verify } as BusSettings).verify(bytes, signature)).toBe(
      true,
    );
    // Derived from the private key when no public one is given.
    expect(
      loadBusVerifier({ signingKeyFile: signing } as BusSettings).verify(bytes, signature),
    ).toBe(true);
    const missing = () => loadBusSigner({} as BusSettings);
    expect(missing).toThrow(LockstepError);
    expect(missing).toThrow(/bus\.signingKeyFile[\s\S]*openssl genpkey -algorithm ed25519/);
    // A public key where the private one belongs: the file is named, its content is not.
    const wrong = () => loadBusSigner({ signingKeyFile: verify } as BusSettings);
    expect(wrong).toThrow(new RegExp(`bus\\.signingKeyFile "${verify}"`));
    const rsa = path.join(dir, `bus-rsa-${process.pid}.pem`);
    const other = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    writeFileSync(rsa, other.export({ type: 'pkcs8', format: 'pem' }));
    expect(() => loadBusSigner({ signingKeyFile: rsa } as BusSettings)).toThrow(/not an Ed25519/);
    try {
      loadBusSigner({ signingKeyFile: path.join(dir, 'no-such-key.pem') } as BusSettings);
    } catch (error) {
      expect((error as Error).message).toContain('ENOENT');
      expect((error as Error).message).not.toContain(pem.slice(40, 60));
    }
  });
});
