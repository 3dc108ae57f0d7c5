import { jetstream, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { connectBus } from '../../adapters/nats/nats-connection.js';

/**
 * What a power loss of every NATS node leaves of `stream` when only its
 * first `keep` messages were on disk: the stream comes back with them and
 * its sequences go on from `keep` (0: no stream at all until the publisher
 * makes it again). Deleting messages would keep the stream's last sequence:
 * not what a lost file-store tail does. The messages kept are stored again
 * as they were, at the same sequences, so their signatures still hold.
 */
export async function loseStreamTail(url: string, stream: string, keep: number): Promise<void> {
  const nc = await connectBus({ servers: url.split(',') }, 'test-power-loss');
  try {
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info(stream);
    const kept: StoredMsg[] = [];
    for (let seq = 1; seq <= keep; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq });
      if (!message) throw new Error(`message ${seq} of ${stream} is not there to keep`);
      kept.push(message);
    }
    await jsm.streams.delete(stream);
    if (keep === 0) return;
    await jsm.streams.add(config);
    const js = jetstream(nc);
    for (const message of kept) {
      const copied = natsHeaders();
      for (const [name, values] of message.header ?? [])
        if (!name.startsWith('Nats-')) for (const value of values) copied.append(name, value);
      const ack = await js.publish(message.subject, message.data, {
        headers: copied,
        expect: { lastSequence: message.seq - 1 },
      });
      if (ack.seq !== message.seq) throw new Error(`message ${message.seq} stored at ${ack.seq}`);
    }
  } finally {
    await nc.close();
  }
}

/** The sequence of the last message of `stream` whose packets are all at or below `version`. */
export async function lastSequenceThrough(
  url: string,
  stream: string,
  version: number,
): Promise<number> {
  const nc = await connectBus({ servers: url.split(',') }, 'test-power-loss');
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(stream);
    let through = 0;
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq });
      // A message of several packets names its last one's version; a part of one, that packet's.
      const last = Number(message?.header?.get('Lockstep-Version'));
      const final = message?.header?.get('Lockstep-Final');
      if (last > version || (last === version && !final)) break;
      through = seq;
    }
    return through;
  } finally {
    await nc.close();
  }
}
