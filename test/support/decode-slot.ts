/**
 * Child process: streams a feed from `start` until `packets` whole packets have
 * arrived, then prints one JSON line with what it saw, how long it took and its
 * peak RSS. Runs in its own process so the memory figure is the stream's alone
 * (used by the large-transaction test and by bench/stream).
 *
 * Usage: decode-slot.ts URL SLOT PUBLICATION START_LSN PACKETS [MAX_BUFFERED_CHANGES [DECODING_WORK_MEM]]
 */
import { toLsn } from '../../plugin/protocol/index.js';
import { openStream } from './stream-session.js';

const [url, slot, publication, start, packetsText, bufferedText, workMem] = process.argv.slice(
  2,
) as string[];
const wanted = Number(packetsText);
const stream = await openStream(
  url as string,
  { slot: slot as string, publication: publication as string },
  { version: 0, lsn: toLsn(start as string) },
  { maxBufferedChanges: Number(bufferedText ?? 20_000), decodingWorkMem: workMem || undefined },
);
let rows = 0;
let packets = 0;
let parts = 0;
let firstAt: bigint | null = null;
const started = process.hrtime.bigint();
const cpuBefore = process.cpuUsage();
// A packet ends with its COMMIT (its final part), not with its last change.
while (packets < wanted) {
  const part = await stream.next();
  if (!part) break;
  firstAt ??= process.hrtime.bigint();
  parts += 1;
  rows += part.changes.length;
  if (part.final) packets += 1;
}
const ended = process.hrtime.bigint();
const cpu = process.cpuUsage(cpuBefore);
await stream.stop();
process.stdout.write(
  `${JSON.stringify({
    rows,
    packets,
    parts,
    seconds: Number(ended - started) / 1e9,
    secondsAfterFirst: Number(ended - (firstAt ?? ended)) / 1e9,
    /** Share of the wall time this process was on a CPU: low means it waited for the server. */
    clientCpuShare: (cpu.user + cpu.system) / 1e6 / (Number(ended - started) / 1e9),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    pauses: stream.stats.pauses,
    peakBufferedChanges: stream.stats.peakBufferedChanges,
  })}\n`,
);
process.exit(0);
