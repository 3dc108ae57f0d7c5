import pg from 'pg';

/** The parts of pg's connection the query writes to (not in @types/pg). */
interface BindConnection {
  readonly stream: { cork?(): void; uncork?(): void; write(chunk: Buffer): boolean };
  parse(query: { text: string; name: string; types: number[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(config: Record<string, never>): void;
  sync(): void;
}

/** pg's own Query class (exported at run time; @types/pg declares it as an interface-only type). */
const PgQuery = (pg as unknown as { Query: new (text: string) => object }).Query;

/** Values from this size on go to the socket as they are, not copied into a message buffer. */
const OWN_WRITE_BYTES = 64 * 1024;

/**
 * A statement whose parameters are all in text form and given as the bytes
 * to send (a view into the primary's message, or a string). pg builds a Bind
 * message by copying every value into one growing buffer (a 100 MB value cost
 * three copies at once); here a large value is handed to the socket as is,
 * after a small header, so it is never copied in the sidecar. The result
 * (row count, rows, the error) arrives like any other query's, so it shares a
 * pipelined connection (pg accepts subclasses of its Query there).
 */
class TextBindQuery extends PgQuery {
  constructor(
    text: string,
    private readonly params: readonly (string | Buffer | null)[],
  ) {
    super(text);
  }

  submit(connection: BindConnection): null {
    const { stream } = connection;
    stream.cork?.();
    try {
      connection.parse({ text: (this as unknown as { text: string }).text, name: '', types: [] });
      for (const chunk of bindMessage(this.params)) stream.write(chunk);
      connection.describe({ type: 'P', name: '' });
      connection.execute({});
      connection.sync();
    } finally {
      stream.uncork?.();
    }
    return null;
  }
}

/**
 * A Bind message (unnamed portal and statement, every parameter and result in
 * text form) as chunks: the small parts joined, each large value its own chunk.
 */
export function bindMessage(params: readonly (string | Buffer | null)[]): Buffer[] {
  const values = params.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
  let length = 4 + 2 + 2 + 2 + 2 + 2 + 2; // length, two empty names, format counts and codes
  for (const value of values) length += 4 + (value?.length ?? 0);
  const chunks: Buffer[] = [];
  let part = Buffer.allocUnsafe(64);
  let used = 0;
  const room = (bytes: number) => {
    if (used + bytes <= part.length) return;
    const grown = Buffer.allocUnsafe(Math.max(part.length * 2, used + bytes));
    part.copy(grown, 0, 0, used);
    part = grown;
  };
  const int = (value: number, bytes: 2 | 4) => {
    room(bytes);
    used = bytes === 2 ? part.writeInt16BE(value, used) : part.writeInt32BE(value, used);
  };
  const flush = () => {
    chunks.push(part.subarray(0, used));
    part = Buffer.allocUnsafe(64);
    used = 0;
  };
  room(1);
  part[used++] = 0x42; // B
  int(length, 4);
  int(0, 2); // unnamed portal and statement: two empty names
  int(1, 2); // one format code for every parameter: text
  int(0, 2);
  int(values.length, 2);
  for (const value of values) {
    int(value === null ? -1 : value.length, 4);
    if (value === null) continue;
    if (value.length >= OWN_WRITE_BYTES) {
      flush();
      chunks.push(value);
    } else {
      room(value.length);
      used += value.copy(part, used);
    }
  }
  int(1, 2); // one format code for every result column: text
  int(0, 2);
  flush();
  return chunks;
}

/** Runs `text` with text-form `params` (see {@link TextBindQuery}) on a pipelined client. */
export function textBindQuery(
  client: pg.Client,
  text: string,
  params: readonly (string | Buffer | null)[],
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new TextBindQuery(text, params) as unknown as {
      callback: (error: Error | null, result: pg.QueryResult) => void;
    };
    query.callback = (error, result) => (error ? reject(error) : resolve(result));
    client.query(query as unknown as pg.QueryConfig);
  });
}
