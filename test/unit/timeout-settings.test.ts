import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../plugin/config/load-config.js';
import { problemsOf } from '../support/config-problems.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-timeouts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(extra: Record<string, unknown> = {}): string {
  const p = path.join(dir, `c-${Object.keys(extra).join('-') || 'minimal'}.json`);
  writeFileSync(
    p,
    JSON.stringify({
      primary: 'postgres://app@127.0.0.1:5432/app',
      replicas: [{ name: 'eu', url: 'postgres://app@10.0.0.2:5432/app' }],
      ...extra,
    }),
  );
  return p;
}

describe('controlTimeoutMs and sidecarWaitMs', () => {
  it('default to the deadlines lockstep had before they were settings', () => {
    const config = loadConfig(configFile(), {});
    expect(config.controlTimeoutMs).toBe(30_000);
    expect(config.sidecarWaitMs).toBe(60_000);
  });

  it('come from the file, and from LOCKSTEP_* variables over it', () => {
    const file = configFile({ controlTimeoutMs: 5_000, sidecarWaitMs: 8_000 });
    expect(loadConfig(file, {})).toMatchObject({ controlTimeoutMs: 5_000, sidecarWaitMs: 8_000 });
    const env = { LOCKSTEP_CONTROL_TIMEOUT_MS: '2000', LOCKSTEP_SIDECAR_WAIT_MS: '3000' };
    expect(loadConfig(file, env)).toMatchObject({ controlTimeoutMs: 2_000, sidecarWaitMs: 3_000 });
  });

  it.each([
    ['controlTimeoutMs', 0],
    ['controlTimeoutMs', 999],
    ['controlTimeoutMs', 1500.5],
    ['sidecarWaitMs', -1],
    ['sidecarWaitMs', '60s'],
  ])('refuse %s = %j, naming the key', (key, value) => {
    const problems = problemsOf(() => loadConfig(configFile({ [key]: value }), {}));
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^${key}\\b`))]);
  });

  it('name the variable a bad value came from', () => {
    const problems = problemsOf(() =>
      loadConfig(configFile(), { LOCKSTEP_CONTROL_TIMEOUT_MS: '500' }),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^controlTimeoutMs \(from LOCKSTEP_CONTROL_TIMEOUT_MS\)/),
    ]);
  });
});
