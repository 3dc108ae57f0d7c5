import { readdirSync, readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { agentMetrics } from '../../plugin/agent/agent-status-metrics.js';
import type { AgentStatusRecord } from '../../plugin/protocol/agent-status-record.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { busPublisherMetrics } from '../../plugin/sidecar/bus-publisher-metrics.js';
import type { BusReplicaReading } from '../../plugin/sidecar/bus-replica-metrics.js';
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
const used = new Set(rules.flatMap((r) => r.expr.match(/\blockstep_[a-z_]+/g) ?? []));
/** Series with a sample: a gauge registered but never set cannot fire an alert. */
const sampled = async (registries: Registry[]) =>
  new Set(
    (await Promise.all(registries.map((r) => r.getMetricsAsJSON())))
      .flat()
      .filter((m) => m.values.length > 0)
      .map((m) => m.name),
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

/** A bus publisher's metrics, reading `replicas` from the agents' reports. */
const publisherWith = (replicas: BusReplicaReading[]) =>
  busPublisherMetrics(() => ({
    publisher: null,
    slot: snapshot.slot,
    twoPhase: snapshot.twoPhase,
    inDoubt: snapshot.inDoubt,
    replicas,
  }));

describe('the Prometheus alerting rules', () => {
  it("name only metrics the sidecar exports (but the bus publisher's own)", async () => {
    const known = await sampled([sidecarMetrics(() => snapshot)]);
    expect(used.size).toBeGreaterThan(10);
    const inProcess = [...used].filter((name) => !name.startsWith('lockstep_bus_'));
    expect(inProcess.filter((name) => !known.has(name))).toEqual([]);
  });

  it('with bus, name only metrics the publisher or an agent exports', async () => {
    const publisher = publisherWith([
      { name: 'eu', version: 3, lagVersions: 2, lagBytes: 10, lagSeconds: 0, reachable: true },
    ]);
    const at = new Date().toISOString();
    const record: AgentStatusRecord = {
      replica: 'eu',
      version: 3,
      lsn: toLsn('0/100'),
      state: 'streaming',
      error: null,
      agent: { host: 'h', pid: 1 },
      inDoubt: [],
      packetsApplied: 3,
      rowsApplied: 3,
      applyErrors: 0,
      heartbeat: { at, count: 1, everyMs: 2000 },
      updatedAt: at,
    };
    const agent = agentMetrics(() => ({ record, active: true }));
    const known = await sampled([publisher, agent]);
    // The lag series come from the publisher (it reads the primary), as `status` computes them.
    expect([...used].filter((name) => !known.has(name))).toEqual([]);
  });

  it('with bus, export a replica without a fresh report as unreported, with no lag', async () => {
    const publisher = publisherWith([
      {
        name: 'eu',
        version: null,
        lagVersions: null,
        lagBytes: null,
        lagSeconds: null,
        reachable: false,
      },
    ]);
    const text = await publisher.metrics();
    expect(text).toContain('lockstep_bus_replica_reported{replica="eu"} 0');
    expect(text).not.toMatch(/^lockstep_replica_lag_\w+\{/m);
    // Which the rules alert on, from the active publisher only.
    const alert = rules.find((r) => r.alert === 'LockstepReplicaUnreported');
    expect(alert?.expr).toMatch(/lockstep_bus_replica_reported == 0/);
    expect(alert?.expr).toMatch(/and on \(job, instance\) \(lockstep_active == 1\)/);
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
