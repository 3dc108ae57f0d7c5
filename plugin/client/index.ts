/**
 * What applications import from lockstep (`lockstep/client`): tagging
 * critical transactions, and waiting for the replicas to have a write.
 */
export type { Queryable, ReplicaPosition } from './replica-positions.js';
export { type QueryRunner, tagTwoPhase, tagTwoPhaseKysely } from './two-phase-tag.js';
export {
  type Replicas,
  ReplicasBehind,
  type WaitForReplicasOptions,
  waitForReplicas,
} from './wait-for-replicas.js';
