import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What `decode-slot.ts` reports. */
export interface DecodeReport {
  rows: number;
  packets: number;
  parts: number;
  seconds: number;
  secondsAfterFirst: number;
  clientCpuShare: number;
  peakRssMB: number;
  pauses: number;
  peakBufferedChanges: number;
}

/** Runs `decode-slot.ts` in its own process (so its RSS is the stream's alone) and returns its report. */
export async function decodeInChild(args: {
  url: string;
  slot: string;
  publication: string;
  start: string;
  packets: number;
  maxBufferedChanges?: number;
  decodingWorkMem?: string;
}): Promise<DecodeReport> {
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/support/decode-slot.ts',
      args.url,
      args.slot,
      args.publication,
      args.start,
      String(args.packets),
      String(args.maxBufferedChanges ?? 20_000),
      args.decodingWorkMem ?? '',
    ],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop() as string) as DecodeReport;
}
