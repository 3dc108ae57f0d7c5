import { toLsn } from '../../plugin/protocol/index.js';
import type { ReplicaAgent } from '../../plugin/replica/replica-agent.js';

/** A replica machine streaming at version 1, and the status publisher's view of it. */
export function streamingAgent() {
  const agent = {
    state: 'streaming',
    position: { version: 1, lsn: toLsn('0/1') },
    lastError: null,
    packetsApplied: 0,
    rowsApplied: 0,
    applyErrors: 0,
  };
  const source = { replica: 'replica1', current: agent as unknown as ReplicaAgent, halted: null };
  return { agent, source };
}
