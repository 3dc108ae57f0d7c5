/** Small steps shared by the apply machine's transitions (`replica-apply.ts`). */
import { PacketNotPastError } from './one-phase.js';
import type { ResumePoint } from './packet.js';
import type {
  ApplyCommand,
  ApplyMode,
  ApplyProgress,
  ApplyState,
  ApplyStep,
  ApplyThen,
} from './replica-apply-types.js';

export const READING: ApplyMode = { kind: 'reading' };
export const STOPPED: ApplyMode = { kind: 'stopped' };
export const LOOK: ApplyThen = { kind: 'look' };
export const LOCATE: ApplyThen = { kind: 'locate' };
/** Status commands, shared: one was built per packet per replica (commands are never changed). */
export const CATCHING_UP: ApplyCommand = { type: 'status', status: 'catching-up' };
export const STREAMING: ApplyCommand = { type: 'status', status: 'streaming' };

export function look(state: ApplyState, out: ApplyCommand[]): ApplyStep {
  out.push({ type: 'look', seq: state.cursor, wait: 'none' });
  return { state: state.mode === READING ? state : { ...state, mode: READING }, commands: out };
}

export function locate(state: ApplyState, out: ApplyCommand[]): ApplyStep {
  out.push({ type: 'locate', version: state.position.version, count: false });
  return { state: { ...state, mode: { kind: 'locating', restart: false } }, commands: out };
}

export function work(
  state: ApplyState,
  out: ApplyCommand[],
  applied: ApplyProgress | null,
  then: ApplyThen,
): ApplyStep {
  return { state: { ...state, mode: { kind: 'working', applied, then } }, commands: out };
}

/** Stopping: an open transaction is rolled back, nothing half-done is kept. */
export function reportSkipped(state: ApplyState, out: ApplyCommand[]): ApplyState {
  if (state.skipped === 0) return state;
  out.push({ type: 'note-skipped', count: state.skipped, version: state.position.version });
  return { ...state, skipped: 0 };
}

/** Halts before a packet that is not past `held` (see movesPast); plain copies, not live headers. */
export function notPast(held: ResumePoint, packet: ResumePoint): ApplyThen {
  const error = new PacketNotPastError(
    { version: held.version, lsn: held.lsn },
    { version: packet.version, lsn: packet.lsn },
  );
  return { kind: 'refuse', error };
}
