import type { Sidecar } from '../sidecar/sidecar.js';

/**
 * The demo's live status, one draw per call: a header (stream, head
 * version, rounds) and a line per replica with its state, version, lag and
 * packets per second since the last draw. On a terminal it redraws in place;
 * otherwise it prints one line per draw.
 */
export function demoStatusView(sidecar: Sidecar, out: NodeJS.WriteStream): () => void {
  const tty = out.isTTY === true;
  const started = Date.now();
  const previous = new Map<string, number>();
  let drawn = 0;
  return () => {
    const lines = sidecar.agents.map((a) => {
      const before = previous.get(a.name) ?? 0;
      previous.set(a.name, a.packetsApplied);
      const head = sidecar.window.newestVersion ?? a.position?.version ?? 0;
      const lag = Math.max(0, head - (a.position?.version ?? 0));
      return `${a.name.padEnd(4)} ${sidecar.replicaState(a).padEnd(11)} version ${String(a.position?.version ?? '-').padStart(7)}  lag ${String(lag).padStart(5)}  ${String(a.packetsApplied - before).padStart(5)} packets/s${a.lastError ? `  ${a.lastError.message.split('\n')[0]}` : ''}`;
    });
    const rounds = sidecar.coordinator.status();
    const header = `t+${Math.round((Date.now() - started) / 1000)}s  stream ${sidecar.streaming ? 'streaming' : 'connecting'}  head version ${sidecar.window.newestVersion ?? '-'}  two-phase rounds ${rounds.roundsCommitted} committed, ${rounds.roundsAborted} aborted`;
    if (tty) {
      if (drawn) out.write(`\x1b[${drawn}A`);
      for (const line of [header, ...lines]) out.write(`\x1b[2K${line}\n`);
      drawn = lines.length + 1;
    } else {
      out.write(`${header} | ${lines.join(' | ')}\n`);
    }
  };
}
