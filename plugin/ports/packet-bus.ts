/** The packet bus as the sidecar and the agents see it (DESIGN.md, "Scale-out: the packet bus"). */

/** The stream a configuration's `bus` describes, in the units JetStream takes. */
export interface BusSettings {
  /** NATS server URLs; they may carry a user and password or a token: never log them. */
  readonly servers: readonly string[];
  readonly stream: string;
  readonly subject: string;
  /** JetStream replication factor. */
  readonly replicas: number;
  readonly maxAgeMs: number;
  readonly maxBytes: number;
}
