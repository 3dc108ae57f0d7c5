import { describe, expect, it } from 'vitest';
import {
  busSettings,
  redactBusUrl,
  serverSyncIntervalMs,
} from '../../plugin/config/bus-settings.js';
import { ConfigError, loadConfig } from '../../plugin/config/load-config.js';
import { partPosition } from '../../plugin/protocol/packet-bus-names.js';

const env = {
  LOCKSTEP_PRIMARY: 'postgres://p@h/db',
  LOCKSTEP_REPLICAS: 'eu=postgres://a@h/db',
  LOCKSTEP_SLOT: 'orders',
};

/** The problems a configuration from `environment` is refused with (none: it loads). */
function problemsOf(environment: Record<string, string>): readonly string[] {
  try {
    loadConfig(undefined, environment);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
}

describe('bus configuration', () => {
  it('is absent unless configured: everything runs in one process', () => {
    expect(busSettings(loadConfig(undefined, env))).toBeNull();
  });

  it('comes from LOCKSTEP_BUS_* with defaults named after the slot', () => {
    const config = loadConfig(undefined, {
      ...env,
      LOCKSTEP_BUS_URL: 'nats://a:4222, nats://b:4222',
      LOCKSTEP_BUS_REPLICAS: '3',
      LOCKSTEP_BUS_MAX_AGE: '12h',
      LOCKSTEP_BUS_SIGNING_KEY_FILE: '/keys/bus-signing.pem',
      LOCKSTEP_BUS_VERIFY_KEY_FILE: '/keys/bus-verify.pem',
    });
    expect(busSettings(config)).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      stream: 'LOCKSTEP_ORDERS',
      subject: 'lockstep.orders.packets',
      replicas: 3,
      maxAgeMs: 12 * 3600 * 1000,
      maxBytes: 10 * 1024 ** 3,
      signingKeyFile: '/keys/bus-signing.pem',
      verifyKeyFile: '/keys/bus-verify.pem',
    });
  });

  it('refuses a bus without a key: nothing unsigned is applied', () => {
    expect(problemsOf({ ...env, LOCKSTEP_BUS_URL: 'nats://a:4222' })).toContainEqual(
      expect.stringMatching(/^bus\.signingKeyFile.*bus\.verifyKeyFile.*openssl genpkey/),
    );
    const agentOnly = { ...env, LOCKSTEP_BUS_URL: 'nats://a:4222' };
    expect(problemsOf({ ...agentOnly, LOCKSTEP_BUS_VERIFY_KEY_FILE: '/k.pem' })).toEqual([]);
  });

  it('names a wrong value without its credentials', () => {
    let problems: readonly string[] = [];
    try {
      loadConfig(undefined, {
        ...env,
        LOCKSTEP_BUS_URL: 'http://me:s3cret@h:4222',
        LOCKSTEP_BUS_STREAM: 'a.b',
        LOCKSTEP_BUS_MAX_BYTES: 'lots',
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems.join('\n')).not.toContain('s3cret');
    expect(problems).toContainEqual(expect.stringMatching(/^bus\.url \(from LOCKSTEP_BUS_URL\)/));
    expect(problems).toContainEqual(expect.stringMatching(/^bus\.stream .*\[A-Za-z0-9_-\]/));
    expect(problems).toContainEqual(expect.stringMatching(/^bus\.maxBytes .*"10GB"/));
  });

  it('names a wrong list of servers without any of their credentials', () => {
    // Comma-separated URLs are the documented form; a trailing comma makes the list invalid.
    for (const url of ['nats://a:s3cret1@h1,nats://b:s3cret2@h2,', 'nats://u:p@ss9@h x']) {
      let problems: readonly string[] = [];
      try {
        loadConfig(undefined, { ...env, LOCKSTEP_BUS_URL: url });
      } catch (error) {
        problems = (error as ConfigError).problems;
      }
      expect(problems).toContainEqual(expect.stringMatching(/^bus\.url/));
      expect(problems.join('\n')).not.toMatch(/s3cret|ss9/);
    }
  });

  it('honours tags, twoPhase.tables and captureDdl with bus', () => {
    const bus = {
      ...env,
      LOCKSTEP_BUS_URL: 'nats://a:4222',
      LOCKSTEP_BUS_VERIFY_KEY_FILE: '/k.pem',
    };
    expect(loadConfig(undefined, bus).twoPhase.tag).toBe(true);
    expect(loadConfig(undefined, { ...bus, LOCKSTEP_TWO_PHASE_TAG: 'true' }).twoPhase.tag).toBe(
      true,
    );
    expect(loadConfig(undefined, { ...bus, LOCKSTEP_TWO_PHASE_TAG: 'false' }).twoPhase.tag).toBe(
      false,
    );
    const tables = loadConfig(undefined, { ...bus, LOCKSTEP_TWO_PHASE_TABLES: 'public.t' });
    expect(tables.twoPhase.tables).toEqual(['public.t']);
    const ddl = loadConfig(undefined, { ...bus, LOCKSTEP_TWO_PHASE_CAPTURE_DDL: 'true' });
    expect(ddl.twoPhase.captureDdl).toBe(true);
    expect(busSettings(ddl)).not.toBeNull();
  });

  it('refuses a URL the NATS client cannot parse, such as a port past 65535', () => {
    for (const url of ['nats://127.0.0.1:99999', 'nats://a:4222,nats://b:70000'])
      expect(problemsOf({ ...env, LOCKSTEP_BUS_URL: url })).toContainEqual(
        expect.stringMatching(/^bus\.url .*valid host and port/),
      );
  });

  it("waits nats-server's default sync interval unless told the servers sync before they ack", () => {
    const bus = {
      ...env,
      LOCKSTEP_BUS_URL: 'nats://a:4222',
      LOCKSTEP_BUS_SIGNING_KEY_FILE: '/keys/bus-signing.pem',
    };
    const interval = (value?: string) =>
      serverSyncIntervalMs(
        loadConfig(undefined, value ? { ...bus, LOCKSTEP_BUS_SERVER_SYNC_INTERVAL: value } : bus)
          .bus,
      );
    expect(interval()).toBe(2 * 60_000);
    expect(interval('30s')).toBe(30_000);
    expect(interval('always')).toBe(0);
    expect(interval('0s')).toBe(0);
    expect(problemsOf({ ...bus, LOCKSTEP_BUS_SERVER_SYNC_INTERVAL: '500ms' })).toContainEqual(
      expect.stringMatching(/^bus\.serverSyncInterval .*"always"/),
    );
  });

  it('hides NATS tokens and passwords in text', () => {
    expect(redactBusUrl('nats://tok3n@a:4222,tls://u:p4ss@b:4222 down')).toBe(
      'nats://***@a:4222,tls://***@b:4222 down',
    );
  });
});

describe('part positions from message headers', () => {
  it('reads them, and nothing from missing or odd values', () => {
    const headers = (values: Record<string, string>) => (name: string) => values[name];
    expect(
      partPosition(
        headers({
          'Lockstep-Version': '12',
          'Lockstep-Part': '0',
          'Lockstep-Changes': '3',
          'Lockstep-Final': 'one',
        }),
      ),
    ).toEqual({ version: 12, part: 0, changes: 3, final: 'one' });
    expect(
      partPosition(
        headers({ 'Lockstep-Version': '12', 'Lockstep-Part': 'x', 'Lockstep-Changes': '3' }),
      ),
    ).toBeNull();
  });
});
