import { Gauge, Histogram, type Registry } from 'prom-client';

/** What the sidecar times as it works (each observation is one batch or one round, never a row). */
export interface SidecarObserver {
  /** A batch (or a large packet, or a round's prepared transaction) committed on a replica. */
  batchApplied(replica: string, seconds: number, commitTime: string): void;
  /** A two-phase round ended. */
  roundFinished(outcome: 'committed' | 'aborted', seconds: number): void;
}

const SHORT = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LATENCY = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * Histograms of apply time, round time and commit-to-applied latency, plus
 * `lockstep_build_info`. Made before the sidecar (the endpoints answer while
 * the primary is awaited) and registered in the endpoints' registry.
 */
export class SidecarHistograms implements SidecarObserver {
  private readonly apply = new Histogram({
    name: 'lockstep_batch_apply_seconds',
    help: 'Time to apply and commit one batch on a replica',
    labelNames: ['replica'],
    buckets: SHORT,
    registers: [],
  });
  private readonly round = new Histogram({
    name: 'lockstep_two_phase_round_seconds',
    help: 'Time from the first prepare to the end of a two-phase round, by outcome',
    labelNames: ['outcome'],
    buckets: SHORT,
    registers: [],
  });
  private readonly latency = new Histogram({
    name: 'lockstep_replica_latency_seconds',
    help: "Time from a batch's last commit on the primary to its commit on the replica",
    labelNames: ['replica'],
    buckets: LATENCY,
    registers: [],
  });
  private readonly build: Gauge<'version' | 'node'>;

  constructor(version: string) {
    this.build = new Gauge({
      name: 'lockstep_build_info',
      help: 'Always 1: the lockstep version and the Node.js version running it',
      labelNames: ['version', 'node'],
      registers: [],
    });
    this.build.set({ version, node: process.versions.node }, 1);
  }

  register(registry: Registry): void {
    for (const metric of [this.apply, this.round, this.latency, this.build])
      registry.registerMetric(metric);
  }

  batchApplied(replica: string, seconds: number, commitTime: string): void {
    this.apply.observe({ replica }, seconds);
    const committed = Date.parse(commitTime);
    // Clocks of two hosts: a negative difference is skew, not latency.
    if (Number.isFinite(committed))
      this.latency.observe({ replica }, Math.max(0, (Date.now() - committed) / 1000));
  }

  roundFinished(outcome: 'committed' | 'aborted', seconds: number): void {
    this.round.observe({ outcome }, seconds);
  }
}
