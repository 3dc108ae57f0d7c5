import net from 'node:net';

const CRLF = Buffer.from('\r\n');
const PART_HEADER = /^Lockstep-Part:\s*(\d+)\s*$/im;
const FINAL_HEADER = /^Lockstep-Final:/im;

/** One server→client protocol frame: its bytes, and for a message its subject and headers. */
interface Frame {
  /** What goes to the client (a rewritten INFO differs from what it was read from). */
  readonly bytes: Buffer;
  /** How many bytes of the server's it was read from. */
  readonly length: number;
  readonly subject?: string;
  readonly headers?: string;
}

/**
 * A TCP proxy between one NATS client and one server that can stall the
 * client's packet reads in the middle of a packet: once armed, it lets
 * through the packet messages up to the first one past its packet's first
 * part (not the last one), then holds every later message carrying packet
 * headers, and everything the subjects such messages came on carry
 * (consumer heartbeats included), until {@link release}. Everything else
 * flows both ways (requests to the agent, their replies, PING/PONG): the
 * client stays connected and answers, only its JetStream read hangs. The
 * servers' INFO loses `connect_urls`, so the client knows no other way.
 */
export class NatsStallProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private armed = false;
  private stalled = false;
  /** Subjects packet messages came on: while stalled, all they carry is held. */
  private readonly packetSubjects = new Set<string>();
  private held: { socket: net.Socket; bytes: Buffer }[] = [];
  /** Part index of each packet message held (what the client never saw while stalled). */
  readonly heldParts: number[] = [];
  /** The part index the stall began after (null: it has not), and when (ms since the epoch). */
  stalledAfterPart: number | null = null;
  stalledAt: number | null = null;

  private constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
    server: net.Server,
  ) {
    this.server = server;
  }

  /** Listens on a loopback port and forwards each connection to `targetUrl` (nats://host:port). */
  static async start(targetUrl: string): Promise<NatsStallProxy> {
    const { hostname, port } = new URL(targetUrl);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new NatsStallProxy(
      { host: hostname, port: Number(port) },
      (server.address() as net.AddressInfo).port,
      server,
    );
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Stalls at the next packet that spans several messages, after its second message. */
  arm(): void {
    this.armed = true;
  }

  /** Delivers what was held, in order, and stops holding. */
  release(): void {
    this.armed = false;
    this.stalled = false;
    for (const { socket, bytes } of this.held) if (!socket.destroyed) socket.write(bytes);
    this.held = [];
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) socket.on('error', end).on('close', end);
    client.on('data', (data: Buffer) => upstream.write(data));
    let pending = Buffer.alloc(0);
    upstream.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const frame = nextFrame(pending);
        if (!frame) break;
        pending = pending.subarray(frame.length);
        this.pass(client, frame);
      }
    });
  }

  /** Forwards a frame to the client, or holds it while the packet read is stalled. */
  private pass(client: net.Socket, frame: Frame): void {
    const part = frame.headers?.match(PART_HEADER);
    if (part && frame.subject) this.packetSubjects.add(frame.subject);
    const onPacketSubject = frame.subject !== undefined && this.packetSubjects.has(frame.subject);
    if (this.stalled && (part || onPacketSubject)) {
      this.held.push({ socket: client, bytes: frame.bytes });
      if (part) this.heldParts.push(Number(part[1]));
      return;
    }
    client.write(frame.bytes);
    const index = part ? Number(part[1]) : 0;
    if (this.armed && index >= 1 && !FINAL_HEADER.test(frame.headers ?? '')) {
      this.armed = false;
      this.stalled = true;
      this.stalledAfterPart = index;
      this.stalledAt = Date.now();
    }
  }
}

/** The first whole frame of `buffer`, or null when more bytes are needed. */
function nextFrame(buffer: Buffer): Frame | null {
  const eol = buffer.indexOf(CRLF);
  if (eol < 0) return null;
  const line = buffer.subarray(0, eol).toString();
  const [op = '', ...args] = line.split(' ').filter((w) => w !== '');
  const verb = op.toUpperCase();
  if (verb === 'INFO') return { bytes: withoutConnectUrls(line), length: eol + 2 };
  if (verb !== 'MSG' && verb !== 'HMSG')
    return { bytes: Buffer.from(buffer.subarray(0, eol + 2)), length: eol + 2 };
  const total = Number(args[args.length - 1]);
  const size = eol + 2 + total + 2;
  if (buffer.length < size) return null;
  const headerBytes = verb === 'HMSG' ? Number(args[args.length - 2]) : 0;
  const body = eol + 2;
  return {
    bytes: Buffer.from(buffer.subarray(0, size)),
    length: size,
    subject: args[0],
    headers: buffer.subarray(body, body + headerBytes).toString(),
  };
}

/** A server's INFO line without the other servers' addresses (the client then reconnects here only). */
function withoutConnectUrls(line: string): Buffer {
  const info = JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>;
  delete info.connect_urls;
  delete info.ws_connect_urls;
  return Buffer.from(`INFO ${JSON.stringify(info)}\r\n`);
}
