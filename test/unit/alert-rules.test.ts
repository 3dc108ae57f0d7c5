import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { toLsn } from '../../plugin/protocol/index.js';
import type { SidecarSnapshot } from '../../plugin/sidecar/sidecar.js';
import { sidecarMetrics } from '../../plugin/sidecar/sidecar-metrics.js';

// promtool checks and unit-tests the rules (npm run check:deploy, in CI); this test, which
// needs no promtool, checks that they name metrics the sidecar exports and that the promtool
// tests cover every alert both firing and not firing.
const folder = new URL('../../deploy/prometheus/', import.meta.url);
const read = (file: string) => parse(readFileSync(new URL(file, folder), 'utf8'));

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (read('lockstep-rules.yaml').groups as Array<{ rules: Rule[] }>).flatMap(
  (g) => g.rules,
);

const snapshot: SidecarSnapshot = {
  active: true,
  streaming: true,
  paused: false,
  headVersion: 3,
  slotRetainedBytes: 0,
  slot: {
    name: 'lockstep',
    exists: true,
    walStatus: 'reserved',
    safeWalBytes: 1024,
    retainedBytes: 0,
    confirmedLsn: toLsn('0/100'),
  },
  slotLost: null,
  replicas: [
    {
      name: 'eu',
      state: 'streaming',
      version: 3,
      lagVersions: 0,
      lagBytes: 0,
      lagSeconds: 0,
      packetsApplied: 3,
      rowsApplied: 3,
      applyErrors: 0,
      commitsNotLanded: 0,
      error: null,
    },
  ],
  twoPhase: { roundsCommitted: 0, roundsAborted: 0, held: null },
  inDoubt: { count: 0, oldestSeconds: 0 },
};

describe('the Prometheus alerting rules', () => {
  it('name only metrics the sidecar exports', async () => {
    const exported = (await sidecarMetrics(() => snapshot).getMetricsAsJSON()).map((m) => m.name);
    const known = new Set(exported);
    const used = new Set(rules.flatMap((r) => r.expr.match(/\blockstep_[a-z_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((name) => !known.has(name))).toEqual([]);
  });

  it('give each alert a unique name, a severity, a summary and a description', () => {
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of rules) {
      expect(rule.labels?.severity, rule.alert).toMatch(/^(critical|warning)$/);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });

  it('are unit-tested both firing and not firing, alert by alert', () => {
    const files = readdirSync(folder).filter((f) => f.endsWith('.test.yaml'));
    // Every test file is run by promtool (.ci/check-deploy names each).
    const script = readFileSync(new URL('../../.ci/check-deploy', import.meta.url), 'utf8');
    for (const file of files) expect(script, file).toContain(file);
    const cases = files.flatMap((file) => {
      const tests = read(file) as {
        rule_files: string[];
        tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
      };
      expect(tests.rule_files, file).toEqual(['lockstep-rules.yaml']);
      return tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    });
    for (const { alert } of rules) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} firing`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} not firing`,
      ).toBe(true);
    }
    // No test of an alert that does not exist (a renamed one).
    const names = new Set(rules.map((r) => r.alert));
    expect(cases.map((c) => c.alertname).filter((n) => !names.has(n))).toEqual([]);
  });
});
