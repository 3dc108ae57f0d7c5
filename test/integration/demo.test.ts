import { readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { LockstepProcess } from '../support/lockstep-process.js';

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('lockstep demo', () => {
  it('replicates for a few seconds, stops on SIGINT, and leaves no server or directory behind', async () => {
    const before = new Set(readdirSync(os.tmpdir()));
    const demo = new LockstepProcess(['demo'], { LOCKSTEP_TEST_RUN_DIR: '' });
    // Wait until it replicates, then interrupt it as a person would with Ctrl-C.
    const deadline = Date.now() + 60_000;
    while (!/t\+3s/.test(demo.output) && Date.now() < deadline && demo.child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(demo.output).toMatch(/attached: stream starts at/);
    expect(demo.output).toMatch(/eu\s+streaming\s+version\s+\d+/);
    // One two-phase migration ran on every node, and critical writes went through rounds.
    expect(demo.output).toMatch(/001-order-status: applied on eu, us, primary/);
    expect(demo.output).toMatch(/two-phase rounds [1-9]\d* committed/);
    const ports = [...demo.output.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(ports.length).toBeGreaterThanOrEqual(3);
    demo.kill('SIGINT');
    expect(await demo.closed).toBe(0);
    expect(demo.output).toMatch(/replicas identical to the primary: yes/);
    expect(demo.output).toMatch(/removed the demo clusters/);
    // Nothing left: no new run directory, no server answering on the demo's ports.
    const left = readdirSync(os.tmpdir()).filter(
      (e) => !before.has(e) && e.startsWith('lockstep-run-'),
    );
    expect(left).toEqual([]);
    for (const port of ports) expect(await listening(port)).toBe(false);
  });
});
