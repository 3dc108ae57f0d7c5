import type { LockstepStatus } from '../status/read-status.js';

/** Lines of a table: each column as wide as its widest cell, two spaces between columns. */
export function formatTable(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [format(header), ...rows.map(format)];
}

/** `status` for people: one line for the primary, a table of replicas, then in-doubt transactions. */
export function formatStatus(status: LockstepStatus): string {
  const lines: string[] = [];
  const p = status.primary;
  lines.push(
    p.error
      ? `primary: ${p.error}`
      : `primary: version ${p.version ?? '-'}  lsn ${p.lsn ?? '-'}  wal ${p.walLsn ?? '-'}  slot retains ${p.slotRetainedBytes === null ? '-' : `${(p.slotRetainedBytes / 1048576).toFixed(1)} MB`}`,
  );
  lines.push(
    status.sidecar.running
      ? `sidecar: ${status.sidecar.active ?? 'running'} is active${status.sidecar.since ? ` since ${status.sidecar.since}` : ''}`
      : 'sidecar: none running',
  );
  if (status.bus)
    lines.push(
      status.bus.reachable
        ? `replicas: as their agents report them on the bus (bucket ${status.bus.bucket})`
        : `bus: UNREACHABLE — ${status.bus.error ?? ''}`,
    );
  if (status.slot?.lost)
    lines.push(`slot: LOST — ${status.slot.reason}`, `  fix: ${status.slot.fix}`);
  else if (status.slot?.walStatus === 'unreserved')
    lines.push(
      `slot: its WAL is past max_slot_wal_keep_size and about to be removed (wal_status unreserved): replicas must catch up now`,
    );
  if (status.paused)
    lines.push(
      `replication: paused since ${status.pausedSince} (lockstep resume continues it; the slot keeps WAL meanwhile)`,
    );
  const rows = status.replicas.map((r) => [
    r.name,
    r.state,
    r.version === null ? '-' : String(r.version),
    r.lsn ?? '-',
    r.lagVersions === null ? '-' : String(r.lagVersions),
    r.lagSeconds === null ? '-' : r.lagSeconds.toFixed(1),
    r.error ? (r.error.split('\n')[0] ?? '') : '',
  ]);
  lines.push(
    ...formatTable(['replica', 'state', 'version', 'lsn', 'lag', 'lag s', 'last error'], rows),
  );
  // Its error's first line is in the table; the fix is the point here (it lasts until a resync).
  for (const r of status.replicas.filter((x) => x.migrationsDiffer))
    lines.push(`migrations: ${r.error?.split('\n').slice(0, 2).join(' —').replace(/\s+/g, ' ')}`);
  const held = status.twoPhase?.held;
  if (held) {
    lines.push(
      `two-phase: held at version ${held.from} — round ${held.gid} refused ${held.attempts} time(s), retrying:`,
    );
    for (const [who, why] of Object.entries(held.refusals))
      lines.push(`  ${who}: ${why.split('\n')[0]}`);
  }
  for (const h of status.joinHolds)
    lines.push(
      h.holderAlive
        ? `join hold: ${h.replica} — the slot is held at version ${h.version} (${h.lsn}) while attach (${h.holder}) copies it`
        : `join hold: ${h.replica} — left by an attach that no longer runs (${h.holder}, since ${h.createdAt}): it keeps WAL from ${h.lsn}; fix: lockstep attach (replaces it) or lockstep detach`,
    );
  if (status.inDoubt.length > 0) {
    lines.push('in-doubt prepared transactions:');
    for (const t of status.inDoubt)
      lines.push(`  ${t.node}: ${t.gid} (prepared ${t.ageSeconds}s ago)`);
  }
  return `${lines.join('\n')}\n`;
}
