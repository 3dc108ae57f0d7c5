/**
 * The replica's apply as a pure state machine: one-phase batching, large
 * packets in parts, rewinds, the gate before a two-phase packet, the vote and
 * the decision. The spec is `replica-apply.md` beside this file; the agent
 * (`plugin/replica/`) drives it.
 */
import { compareLsn } from './lsn.js';
import { decideOnePhase, movesPast } from './one-phase.js';
import type { PacketPart, ResumePoint } from './packet.js';
import { atGate, collect, decided, gate, refuse } from './replica-apply-gate.js';
import {
  CATCHING_UP,
  LOCATE,
  LOOK,
  locate,
  look,
  notPast,
  READING,
  reportSkipped,
  STOPPED,
  STREAMING,
  work,
} from './replica-apply-steps.js';
import type {
  ApplyBatch,
  ApplyCommand,
  ApplyEvent,
  ApplyMode,
  ApplyOptions,
  ApplyState,
  ApplyStep,
  ApplyThen,
  WindowLook,
} from './replica-apply-types.js';

export * from './replica-apply-types.js';

const REWINDING: ApplyMode = { kind: 'rewinding' };

/** Starts at the replica's durable `position`, the window's `epoch`, and `cursor` (located there). */
export function startApply(
  options: ApplyOptions,
  position: ResumePoint,
  epoch: number,
  cursor: number | null,
): ApplyStep {
  const state: ApplyState = {
    options,
    mode: READING,
    position,
    epoch,
    cursor,
    batch: null,
    batches: 0,
    open: null,
    skipped: 0,
  };
  return look(state, []);
}

/** Applies one event. An event that does not fit the state is a driver's bug: it throws. */
export function applyTransition(state: ApplyState, event: ApplyEvent): ApplyStep {
  const { mode } = state;
  switch (mode.kind) {
    case 'reading':
    case 'rewinding':
      if (event.type === 'stop') return stop(state);
      if (event.type === 'look')
        return mode.kind === 'reading' ? read(state, event) : rewound(state, event);
      break;
    case 'locating':
      if (event.type === 'located') {
        if (!mode.restart) return look({ ...state, cursor: event.seq }, []);
        // The restarted stream may have re-sent packets this replica has: locating passed them.
        const s = {
          ...state,
          epoch: event.epoch,
          cursor: event.seq,
          skipped: state.skipped + event.passed,
        };
        return look(s, [
          { type: 'duplicates', count: event.passed },
          { type: 'note-delta', position: s.position },
        ]);
      }
      break;
    case 'working':
      if (event.type === 'done') {
        if (!mode.applied) return proceed(state, mode.then, [], event.position);
        const s = { ...state, position: mode.applied.position };
        return proceed(s, mode.then, [{ type: 'applied', ...mode.applied }], event.position);
      }
      if (event.type === 'failed')
        return {
          state: { ...state, mode: STOPPED },
          commands: [{ type: 'fail', error: event.error }],
        };
      break;
    case 'gate':
      if (event.type === 'stop') return stop(state);
      if (event.type === 'gate') {
        const step = atGate(state, mode.part, event);
        if (!('passed' in step)) return step;
        const cursor = state.cursor as number;
        return enter(state, cursor, mode.part, event, step.passed);
      }
      break;
    case 'collecting':
      if (event.type === 'stop') return refuse(state, 'the sidecar is stopping');
      if (event.type === 'look') return collect(state, mode, event);
      break;
    case 'preparing':
      if (event.type === 'done')
        return {
          state: { ...state, mode: { kind: 'voted', vote: mode.vote } },
          commands: [{ type: 'vote-yes', gid: mode.vote.gid }],
        };
      // The vote is no with the error's text; the failure halts the replica like any other.
      if (event.type === 'failed')
        return {
          state: { ...state, mode: STOPPED },
          commands: [
            { type: 'vote-no', reason: event.reason },
            { type: 'fail', error: event.error },
          ],
        };
      break;
    case 'voted':
      if (event.type === 'decision') return decided(state, mode.vote, event.outcome);
      break;
  }
  throw new Error(`replica apply: event ${event.type} does not fit state ${mode.kind}`);
}

function stop(state: ApplyState): ApplyStep {
  if (!state.open) return { state: { ...state, mode: STOPPED }, commands: [{ type: 'exit' }] };
  return work(state, [{ type: 'rollback', version: state.position.version }], null, {
    kind: 'exit',
  });
}

/** The stream restarted: whatever is not committed will come again. */
function restart(state: ApplyState): ApplyStep {
  const s = { ...state, batch: null, open: null };
  if (state.open)
    return work(s, [{ type: 'rollback', version: state.position.version }], null, {
      kind: 'restart',
    });
  return proceed(s, { kind: 'restart' }, []);
}

function rewinding(state: ApplyState): ApplyStep {
  return {
    state: { ...state, mode: REWINDING },
    commands: [
      { type: 'request-rewind', position: state.position },
      { type: 'look', seq: null, wait: 'window' },
    ],
  };
}

function rewound(state: ApplyState, event: WindowLook): ApplyStep {
  if (event.epoch === state.epoch) return rewinding(state);
  return locate({ ...state, epoch: event.epoch }, []);
}

function read(state: ApplyState, event: WindowLook): ApplyStep {
  if (event.epoch !== state.epoch) return restart(state);
  const { cursor, open } = state;
  if (cursor === null) return rewinding(state);
  const { part } = event;
  if (!part) return idle(state, cursor, event);
  if (!open) return next(state, cursor, part, event);
  // Inside a large packet: its parts follow one another.
  if (part.header.version !== open.version)
    return work(
      { ...state, open: null },
      [{ type: 'rollback', version: part.header.version }],
      null,
      LOCATE,
    );
  return work(state, [{ type: 'apply-part', part }], null, { kind: 'part-applied', part });
}

/** Nothing at the cursor. */
function idle(state: ApplyState, cursor: number, event: WindowLook): ApplyStep {
  // Parts left the window under a stale cursor: commit what is whole, then find our place again.
  if (cursor < event.start) return flush(state, { kind: 'stale' }, []);
  const { batch, position } = state;
  if (batch) {
    // Unless another replica ended the batch here already, give it until batchMs to grow,
    // then end it here for every replica (they batch alike).
    if (event.cutBefore !== null) return flush(state, LOOK, []);
    const left = batch.since + state.options.batchMs - event.now;
    if (left <= 0) return flush(state, LOOK, [{ type: 'cut-newest' }]);
    return {
      state,
      commands: [{ type: 'look', seq: cursor, wait: { ms: left, batch: batch.number } }],
    };
  }
  const out: ApplyCommand[] = [];
  let s = state;
  if (!state.open) {
    out.push(STREAMING);
    // Once the stream has come back up to this replica's own version, the run of duplicates is over.
    if ((event.newestVersion ?? 0) >= position.version) s = reportSkipped(s, out);
    const point = event.idle;
    if (point && point.version === position.version && compareLsn(point.lsn, position.lsn) > 0) {
      // Holding every packet up to an idle point: its LSN lets the slot release WAL of other tables.
      out.push({ type: 'advance', position: point });
      return work(s, out, { position: point, packets: 0, rows: 0 }, LOOK);
    }
  }
  out.push({ type: 'look', seq: cursor, wait: 'window' });
  return { state: s, commands: out };
}

/** What a look (at the window or the gate) shows about the batch's end after a part. */
type PartLook = Pick<WindowLook, 'cut' | 'more' | 'now'>;

/** A part outside any open packet: the one-phase rule decides. */
function next(state: ApplyState, cursor: number, part: PacketPart, at: PartLook): ApplyStep {
  const { header } = part;
  const reached = state.batch ? state.batch.newest.part.header : state.position;
  const decision = decideOnePhase(reached.version, header.version);
  if (decision.action === 'skip-duplicate') {
    const seq = cursor + 1;
    if (!part.final)
      return look(passed(state, seq, state.batch, state.skipped), [{ type: 'set-cursor', seq }]);
    return look(passed(state, seq, state.batch, state.skipped + 1), [
      { type: 'duplicates', count: 1 },
      { type: 'set-cursor', seq },
    ]);
  }
  // The missing packets are earlier in the window or gone: commit what is whole, then locate again.
  if (decision.action === 'request-delta' || part.index !== 0) return flush(state, LOCATE, []);
  // Next by version but not by LSN: a mis-numbered stream (see movesPast). What is whole commits first.
  if (!movesPast(reached, header)) return flush(state, notPast(reached, header), []);
  const out: ApplyCommand[] = [];
  const s = reportSkipped(state, out);
  out.push(CATCHING_UP);
  // The batch ends before a two-phase packet; nothing after it is applied until it is decided.
  if (part.final?.phase === 'two') return flush(s, { kind: 'gate', part }, out);
  return enter(s, cursor, part, at, out);
}

/** Takes the part at `cursor` into the batch, or opens a large packet's transaction for it. */
function enter(
  state: ApplyState,
  cursor: number,
  part: PacketPart,
  { cut, more, now }: PartLook,
  out: ApplyCommand[],
): ApplyStep {
  const seq = cursor + 1;
  out.push({ type: 'set-cursor', seq });
  // A large packet: what is buffered commits first, then the packet streams through its own transaction.
  if (!part.final) return flush({ ...state, cursor: seq }, { kind: 'begin', part }, out);
  const rows = part.changes.length;
  const was = state.batch;
  const batch: ApplyBatch = was
    ? {
        newest: { part, before: was.newest },
        count: was.count + 1,
        rows: was.rows + rows,
        since: was.since,
        number: was.number,
      }
    : { newest: { part, before: null }, count: 1, rows, since: now, number: state.batches + 1 };
  const s = passed(state, seq, batch, state.skipped);
  // Batches end where the window cuts them, so replicas in step apply the same ones. A
  // replica that is behind (more is already here) ignores cuts made for time and gathers more.
  if (batch.rows >= state.options.batchRows || cut === 'rows' || (cut === 'time' && !more))
    return flush(s, LOOK, out);
  return look(s, out);
}

/**
 * The state once the cursor passed a part. Built field by field, not spread:
 * it runs once per packet on the hot path, where a spread costs several times more.
 */
function passed(
  state: ApplyState,
  cursor: number,
  batch: ApplyBatch | null,
  skipped: number,
): ApplyState {
  return {
    options: state.options,
    mode: state.mode,
    position: state.position,
    epoch: state.epoch,
    cursor,
    batch,
    batches: batch ? batch.number : state.batches,
    open: state.open,
    skipped,
  };
}

/** Commits the batch (if any), then goes on with `then`. */
function flush(state: ApplyState, then: ApplyThen, out: ApplyCommand[]): ApplyStep {
  const { batch } = state;
  if (!batch) return proceed(state, then, out);
  const parts = batchParts(batch);
  const { header } = parts[parts.length - 1] as PacketPart;
  const position = { version: header.version, lsn: header.lsn };
  out.push({ type: 'apply-batch', parts, position, commitTime: header.commitTime });
  return work(
    { ...state, batch: null },
    out,
    { position, packets: batch.count, rows: batch.rows },
    then,
  );
}

function batchParts(batch: ApplyBatch): PacketPart[] {
  const parts = new Array<PacketPart>(batch.count);
  let link: ApplyBatch['newest'] | null = batch.newest;
  for (let i = batch.count - 1; i >= 0 && link; i--, link = link.before) parts[i] = link.part;
  return parts;
}

/** Goes on after work on the replica is done (or needed none). */
function proceed(
  state: ApplyState,
  then: ApplyThen,
  out: ApplyCommand[],
  read?: ResumePoint,
): ApplyStep {
  const { position } = state;
  switch (then.kind) {
    case 'look':
      return look(state, out);
    case 'locate':
      return locate(state, out);
    case 'stale':
      if (!state.open) return locate(state, out);
      out.push({ type: 'rollback', version: position.version });
      return work({ ...state, open: null }, out, null, LOCATE);
    case 'restart':
      out.push({ type: 'locate', version: position.version, count: true });
      return { state: { ...state, mode: { kind: 'locating', restart: true } }, commands: out };
    case 'gate':
      return gate(state, then.part, out, false);
    case 'begin':
      out.push({ type: 'begin', from: position.version }, { type: 'apply-part', part: then.part });
      return work(state, out, null, { kind: 'opened', part: then.part });
    case 'opened': {
      const open = { version: then.part.header.version, rows: then.part.changes.length };
      return look({ ...state, open }, out);
    }
    case 'part-applied':
      return partApplied(state, then.part, out);
    case 'read-position':
      out.push({ type: 'read-position', version: then.version });
      return work(state, out, null, { kind: 'moved' });
    case 'moved': {
      const at = read ?? position;
      out.push({ type: 'applied', position: at, packets: 0, rows: 0 });
      return locate({ ...state, position: at }, out);
    }
    case 'refuse':
      out.push({ type: 'fail', error: then.error });
      return { state: { ...state, mode: STOPPED }, commands: out };
    case 'exit':
      out.push({ type: 'exit' });
      return { state: { ...state, mode: STOPPED }, commands: out };
  }
}

function partApplied(state: ApplyState, part: PacketPart, out: ApplyCommand[]): ApplyStep {
  const open = state.open as NonNullable<ApplyState['open']>;
  const seq = (state.cursor as number) + 1;
  const rows = open.rows + part.changes.length;
  const s = { ...state, cursor: seq, open: { version: open.version, rows } };
  out.push({ type: 'set-cursor', seq });
  // A large two-phase packet: the open transaction is prepared for its round.
  if (part.final?.phase === 'two') return gate(s, part, out, false);
  if (!part.final) return look(s, out);
  const { header } = part;
  const position = { version: header.version, lsn: header.lsn };
  out.push({ type: 'commit', position, commitTime: header.commitTime });
  return work({ ...s, open: null }, out, { position, packets: 1, rows }, LOOK);
}

/** Waits at two-phase packet `part` (its gate) for the coordinator. */
