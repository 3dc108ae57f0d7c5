import type { Logger } from 'pino';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { packetSignedBytes, SIGNATURE_HEADER } from '../../plugin/protocol/bus-signed-bytes.js';
import type { BusVerifier } from './bus-signing.js';

/**
 * An agent's check that a message of the packet subject is `lockstep run`'s:
 * made before anything of it is decoded or trusted. A message that fails is
 * neither applied nor skipped (skipping would lose what it stands for): the
 * agent stops, as when the bus no longer holds its next packet.
 */
export class PacketSignatureCheck {
  constructor(
    private readonly verifier: BusVerifier,
    private readonly subject: string,
    private readonly replica: string,
    private readonly log?: Logger,
  ) {}

  /** Throws unless the message at stream sequence `sequence` carries a valid signature. */
  check(sequence: number, header: (name: string) => string | undefined, body: Uint8Array): void {
    const bytes = packetSignedBytes(this.subject, sequence, header, body);
    const signature = header(SIGNATURE_HEADER);
    if (this.verifier.verify(bytes, signature)) return;
    const { subject, replica } = this;
    // Never the payload: it is not lockstep's, and may be anything.
    this.log?.error(
      {
        replica,
        subject,
        sequence,
        signed: signature !== undefined,
        event: 'bus-signature-invalid',
      },
      'a bus message is not signed by lockstep run: nothing of it is applied, the agent stops',
    );
    throw new LockstepError({
      node: replica,
      problem: `message ${sequence} of ${subject} is ${signature === undefined ? 'not signed' : 'signed with another key'}: lockstep run's key did not sign it, so nothing of it is applied and the agent stops`,
      // Never "delete it" first: after an upgrade to signing, it is a genuine packet of the older lockstep.
      fix: `if it predates the upgrade to signing (written by an older lockstep), or the key pair changed since, copy the replica anew: lockstep attach --config F --resync ${replica}; then start lockstep agent again. Else it is foreign: find who publishes on ${subject} (only lockstep run's NATS user should), and only if it is not lockstep's, remove it (nats stream rmm <stream> ${sequence}) and start lockstep agent again. If new packets fail too, the agent's bus.verifyKeyFile is not the public key of lockstep run's bus.signingKeyFile`,
      setting: 'bus.verifyKeyFile',
    });
  }
}
