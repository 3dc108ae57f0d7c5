import type { AgentStatusRecord } from '../protocol/agent-status-record.js';

/** Where an agent publishes its report (the agents' KV bucket). */
export interface AgentStatusWriter {
  /** Stores `record` under its replica's key; rejects when the bus does not take it in time. */
  put(record: AgentStatusRecord): Promise<void>;
}

/** A report as stored, with the bus's own time of storing it. */
export interface StoredAgentStatus {
  readonly record: AgentStatusRecord;
  readonly storedAt: Date;
}

/** Reads the agents' reports for `status`. */
export interface AgentStatusReader {
  /** Where the reports are kept (for messages). */
  readonly bucket: string;
  /**
   * The latest report of each replica named (absent: none, or not one); a
   * LockstepError with setting `connection` when the bus cannot be reached.
   */
  read(replicas: readonly string[]): Promise<Map<string, StoredAgentStatus>>;
}
