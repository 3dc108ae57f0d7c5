import pg from 'pg';

/** The parts of pg's connection a COPY writes to (not in @types/pg). */
interface CopyConnection {
  readonly stream: { cork?(): void; uncork?(): void };
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/** pg's own Query class (exported at run time; @types/pg declares it as an interface-only type). */
const PgQuery = (pg as unknown as { Query: new (text: string) => object }).Query;

/**
 * `COPY … FROM STDIN` with its data written right behind the command, so it
 * can share a pipelined connection: the server reads the data as it reads the
 * command, and if the command fails before copying, the protocol has it
 * ignore the data that follows. pg accepts subclasses of its Query in
 * pipeline mode (not other custom queries, such as pg-copy-streams); the
 * result (`COPY n`, or the error) arrives like any other query's.
 */
class PipelinedCopyQuery extends PgQuery {
  constructor(
    text: string,
    private readonly data: Buffer,
  ) {
    super(text);
  }

  submit(connection: CopyConnection): null {
    connection.stream.cork?.();
    try {
      connection.query((this as unknown as { text: string }).text);
      if (this.data.length > 0) connection.sendCopyFromChunk(this.data);
      connection.endCopyFrom();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  /** The data went out with the command. */
  handleCopyInResponse(): void {}
}

/** Sends `COPY … FROM STDIN` (text format) with `data` on a pipelined client; resolves with the result. */
export function pipelinedCopy(
  client: pg.Client,
  text: string,
  data: Buffer,
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new PipelinedCopyQuery(text, data) as unknown as {
      callback: (error: Error | null, result: pg.QueryResult) => void;
    };
    query.callback = (error, result) => (error ? reject(error) : resolve(result));
    client.query(query as unknown as pg.QueryConfig);
  });
}
