/** What applications import from lockstep (`lockstep/client`): tagging critical transactions. */
export { type QueryRunner, tagTwoPhase, tagTwoPhaseKysely } from './two-phase-tag.js';
