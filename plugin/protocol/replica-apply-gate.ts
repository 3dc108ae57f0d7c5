/**
 * The apply machine at a two-phase packet: its gate, the round's packets,
 * the vote and the decision (spec: `replica-apply.md`).
 */
import type { PacketPart } from './packet.js';
import { LOCATE, LOOK, locate, look, STOPPED, work } from './replica-apply-steps.js';
import type {
  ApplyCommand,
  ApplyMode,
  ApplyState,
  ApplyStep,
  ApplyVote,
  GateLook,
  GateRequest,
  WindowLook,
} from './replica-apply-types.js';

export function gate(
  state: ApplyState,
  part: PacketPart,
  out: ApplyCommand[],
  wait: boolean,
): ApplyStep {
  const seq = state.cursor as number;
  out.push({ type: 'gate', version: part.header.version, seq, wait });
  return { state: { ...state, mode: { kind: 'gate', part } }, commands: out };
}

/**
 * The coordinator's word at the gate. `passed` (with the commands so far):
 * the round committed without this replica, whose packet is then applied
 * as any one-phase one (the caller batches it).
 */
export function atGate(
  state: ApplyState,
  part: PacketPart,
  event: GateLook,
): ApplyStep | { passed: ApplyCommand[] } {
  // A restarted stream: back to the top, where the restart is handled.
  if (event.epoch !== state.epoch) return look(state, []);
  const { version } = part.header;
  const out: ApplyCommand[] = [];
  const { pending } = event;
  if (pending) {
    out.push({ type: 'take-prepare' });
    if (pending.from === version) return prepareAtGate(state, part, pending, out);
    out.push({
      type: 'vote-no',
      reason: `replica ${state.options.node} waits at version ${version}, not ${pending.from}`,
    });
  }
  // The round committed here without this machine's vote (a restart in between).
  if (event.committedThrough >= version) {
    if (!state.open) {
      out.push({ type: 'read-position', version });
      return work(state, out, null, { kind: 'moved' });
    }
    out.push({ type: 'rollback', version });
    return work({ ...state, open: null }, out, null, { kind: 'read-position', version });
  }
  // Committed on its participants while this replica was none (resyncing): applied as any other.
  if (event.roundCommitted) {
    const { open } = state;
    if (!open) return { passed: out };
    const position = { version, lsn: part.header.lsn };
    out.push({ type: 'commit', position, commitTime: part.header.commitTime });
    return work({ ...state, open: null }, out, { position, packets: 1, rows: open.rows }, LOOK);
  }
  return gate(state, part, out, true);
}

function prepareAtGate(
  state: ApplyState,
  part: PacketPart,
  request: GateRequest,
  out: ApplyCommand[],
): ApplyStep {
  const { open } = state;
  const { header } = part;
  if (!open) {
    out.push({ type: 'look', seq: state.cursor, wait: 'none' });
    const mode: ApplyMode = { kind: 'collecting', request, seq: state.cursor as number, parts: [] };
    return { state: { ...state, mode }, commands: out };
  }
  if (request.to !== header.version) {
    out.push(
      { type: 'vote-no', reason: `version ${header.version} needs a round of its own` },
      { type: 'rollback', version: header.version },
    );
    return work({ ...state, open: null }, out, null, LOCATE);
  }
  const position = { version: header.version, lsn: header.lsn };
  const vote: ApplyVote = {
    gid: request.gid,
    applied: { position, packets: 1, rows: open.rows },
    advance: 0,
  };
  out.push({ type: 'commit', position, commitTime: header.commitTime, gid: request.gid });
  return { state: { ...state, open: null, mode: { kind: 'preparing', vote } }, commands: out };
}

/** Gathers the round's whole packets from the window; any other part refuses the round. */
export function collect(
  state: ApplyState,
  mode: Extract<ApplyMode, { kind: 'collecting' }>,
  event: WindowLook,
): ApplyStep {
  if (event.epoch !== state.epoch) return refuse(state, 'the stream restarted while preparing');
  const { part } = event;
  const { request, seq } = mode;
  if (!part) return { state, commands: [{ type: 'look', seq, wait: 'window' }] };
  const expected = request.from + mode.parts.length;
  if (part.header.version !== expected || part.index !== 0 || part.final?.phase !== 'two')
    return refuse(
      state,
      `version ${expected} is not a whole two-phase packet on replica ${state.options.node}`,
    );
  const parts = [...mode.parts, part];
  if (parts.length < request.to - request.from + 1) {
    const more: ApplyMode = { kind: 'collecting', request, seq: seq + 1, parts };
    return {
      state: { ...state, mode: more },
      commands: [{ type: 'look', seq: seq + 1, wait: 'none' }],
    };
  }
  const { header } = part;
  const position = { version: header.version, lsn: header.lsn };
  const rows = parts.reduce((sum, p) => sum + p.changes.length, 0);
  const vote: ApplyVote = {
    gid: request.gid,
    applied: { position, packets: parts.length, rows },
    advance: parts.length,
  };
  return {
    state: { ...state, mode: { kind: 'preparing', vote } },
    commands: [
      { type: 'apply-batch', parts, position, commitTime: header.commitTime, gid: request.gid },
    ],
  };
}

export function refuse(state: ApplyState, reason: string): ApplyStep {
  return locate(state, [{ type: 'vote-no', reason }]);
}

export function decided(
  state: ApplyState,
  vote: ApplyVote,
  outcome: 'committed' | 'rolled-back' | null,
): ApplyStep {
  if (outcome === null) return { state: { ...state, mode: STOPPED }, commands: [{ type: 'exit' }] };
  if (outcome === 'rolled-back') return locate(state, []);
  const out: ApplyCommand[] = [{ type: 'applied', ...vote.applied }];
  let cursor = state.cursor;
  if (vote.advance > 0 && cursor !== null) {
    cursor += vote.advance;
    out.push({ type: 'set-cursor', seq: cursor });
  }
  return look({ ...state, position: vote.applied.position, cursor }, out);
}
