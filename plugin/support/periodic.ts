import { Signal } from './signal.js';

/**
 * Runs `step` now and then every `everyMs` (measured from the end of the
 * step before: one at a time) until {@link stop}. A step's failure goes to
 * `failed` and the next step runs on time: nothing else waits for it.
 */
export class Periodic {
  private stopping = false;
  private readonly wake = new Signal();
  private readonly running: Promise<void>;

  constructor(
    private readonly everyMs: number,
    private readonly step: () => Promise<void>,
    private readonly failed: (error: Error) => void,
  ) {
    this.running = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.step().catch((error: Error) => this.failed(error));
      if (!this.stopping) await this.wake.wait(this.everyMs);
    }
  }

  /** Stops after the step running now, if any. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.notify();
    await this.running;
  }
}
