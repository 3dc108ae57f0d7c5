import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../plugin/config/load-config.js';
import { parseConnectionString } from '../../plugin/ports/connection-string.js';
import { problemsOf } from '../support/config-problems.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

const minimal = {
  primary: 'postgres://app:s3cret@127.0.0.1:5432/app',
  replicas: [{ name: 'eu', url: 'postgres://app:s3cret@10.0.0.2:5432/app' }],
};

describe('loadConfig', () => {
  it('reads JSON and fills defaults', () => {
    const config = loadConfig(file('c.json', JSON.stringify(minimal)), {});
    expect(config).toMatchObject({
      tables: ['public.*'],
      twoPhase: { tables: [], tag: true, captureDdl: false, voteTimeoutMs: 5000 },
      http: { host: '127.0.0.1', port: 9187 },
      conflicts: 'halt',
      slot: 'lockstep',
    });
  });

  it('reads YAML', () => {
    const config = loadConfig(
      file(
        'c.yaml',
        'primary: postgres://p@h/db\nreplicas:\n  - name: us\n    url: postgres://r@h/db\ntwoPhase:\n  tables: ["billing.*"]\n',
      ),
      {},
    );
    expect(config.twoPhase.tables).toEqual(['billing.*']);
  });

  it('lets LOCKSTEP_* variables override and supply every key', () => {
    const config = loadConfig(undefined, {
      LOCKSTEP_PRIMARY: 'postgres://p@h/db',
      LOCKSTEP_REPLICAS: 'eu=postgres://a@h/db,us=postgres://b@h/db',
      LOCKSTEP_TABLES: 'public.*, billing.*',
      LOCKSTEP_TWO_PHASE_TAG: 'false',
      LOCKSTEP_HTTP_PORT: '9999',
      LOCKSTEP_CONFLICTS: 'overwrite',
    });
    expect(config.replicas.map((r) => r.name)).toEqual(['eu', 'us']);
    expect(config.tables).toEqual(['public.*', 'billing.*']);
    expect(config.twoPhase.tag).toBe(false);
    expect(config.http.port).toBe(9999);
    expect(config.conflicts).toBe('overwrite');
  });

  it('names the key, the value and what is expected, without passwords', () => {
    const problems = problemsOf(() =>
      loadConfig(
        file(
          'bad.json',
          JSON.stringify({
            ...minimal,
            replicas: [{ name: 'eu', url: 'mysql://app:s3cret@h/db' }],
            http: { port: 'ninety' },
            conflict: 'halt',
          }),
        ),
        {},
      ),
    );
    expect(problems.join('\n')).not.toContain('s3cret');
    expect(problems).toContainEqual(
      expect.stringMatching(
        /^replicas\[0\]\.url: got "mysql:\/\/app:\*\*\*@h\/db"; expected .*postgres:\/\//,
      ),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/^http\.port: got "ninety"; expected number/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/unknown key "conflict"/));
  });

  it('refuses two replicas with the same name', () => {
    const twice = {
      ...minimal,
      replicas: [...minimal.replicas, { name: 'eu', url: 'postgres://x@h/db' }],
    };
    expect(problemsOf(() => loadConfig(file('twice.json', JSON.stringify(twice)), {}))).toEqual([
      expect.stringMatching(
        /^replicas\[1\]\.name: got "eu"; expected a name used by no other replica/,
      ),
    ]);
  });

  it('names the variable a bad value came from', () => {
    const problems = problemsOf(() =>
      loadConfig(file('ok.json', JSON.stringify(minimal)), { LOCKSTEP_CONFLICTS: 'ignore' }),
    );
    expect(problems).toEqual([
      expect.stringMatching(
        /^conflicts \(from LOCKSTEP_CONFLICTS\): got "ignore"; expected one of/,
      ),
    ]);
  });

  it('reports a missing file and a missing primary clearly', () => {
    expect(problemsOf(() => loadConfig(path.join(dir, 'nope.yaml'), {}))).toEqual([
      'cannot read the file: ENOENT',
    ]);
    expect(problemsOf(() => loadConfig(file('empty.yaml', ''), {}))).toContainEqual(
      expect.stringMatching(/^primary: got missing; expected/),
    );
  });
});

describe('loadConfig: node connections', () => {
  const secret = file('secret', 'fromFile\n');
  const other = file('other-secret', 'fromVariable');
  const keywords = (url: string) => parseConnectionString(url);
  const loadJson = (name: string, config: unknown, env: NodeJS.ProcessEnv = {}) =>
    loadConfig(file(name, JSON.stringify(config)), env);

  it('takes URLs and keyword DSNs, a primary as a string or { url, passwordFile }, and resolves each node once', () => {
    const config = loadJson(
      'nodes.json',
      {
        primary: { url: 'postgres://app@10.0.0.1/app?sslmode=require', passwordFile: secret },
        replicas: [
          { name: 'eu', url: "host=10.0.0.2 dbname=app user=app password='a b'" },
          { name: 'us', url: 'host=10.0.0.3 dbname=app user=app', passwordFile: secret },
        ],
      },
      { PGSSLMODE: 'verify-full', PGPORT: '6432' },
    );
    expect(keywords(config.primary)).toMatchObject({
      host: '10.0.0.1',
      port: '6432',
      password: 'fromFile',
      sslmode: 'require',
    });
    expect(config.replicas.map((r) => keywords(r.url))).toMatchObject([
      { host: '10.0.0.2', password: 'a b', sslmode: 'verify-full' },
      { host: '10.0.0.3', password: 'fromFile', sslmode: 'verify-full' },
    ]);
  });

  it('takes password files from LOCKSTEP_PRIMARY_PASSWORD_FILE and LOCKSTEP_REPLICA_<NAME>_PASSWORD_FILE', () => {
    const config = loadJson(
      'vars.json',
      {
        primary: { url: 'postgres://app@h/app', passwordFile: secret },
        replicas: [{ name: 'eu-west', url: 'postgres://app@h2/app' }],
      },
      {
        LOCKSTEP_PRIMARY: 'postgres://app@moved/app',
        LOCKSTEP_REPLICA_EU_WEST_PASSWORD_FILE: other,
      },
    );
    // LOCKSTEP_PRIMARY replaces the URL and keeps the file's passwordFile.
    expect(keywords(config.primary)).toMatchObject({ host: 'moved', password: 'fromFile' });
    expect(keywords(config.replicas[0]?.url ?? '')).toMatchObject({ password: 'fromVariable' });
    const overridden = loadConfig(undefined, {
      LOCKSTEP_PRIMARY: 'postgres://app@h/app',
      LOCKSTEP_PRIMARY_PASSWORD_FILE: other,
      LOCKSTEP_REPLICAS: 'eu=host=h2 user=app',
    });
    expect(keywords(overridden.primary).password).toBe('fromVariable');
    expect(keywords(overridden.replicas[0]?.url ?? '')).toMatchObject({ host: 'h2', user: 'app' });
  });

  it('names the node and the problem, never the password', () => {
    const problems = problemsOf(() =>
      loadJson('bad-nodes.json', {
        primary: 'host=h password=Zq-secret',
        replicas: [{ name: 'eu', url: "host=h password='Zq secret' ssl=1" }],
      }),
    );
    expect(problems.join('\n')).not.toMatch(/Zq/);
    expect(problems).toEqual([
      expect.stringMatching(
        /^replicas\[0\]\.url: got "host=h password=\*\*\* ssl=1"; expected a connection string lockstep can use \(unknown connection parameter "ssl"/,
      ),
    ]);
    const resolved = problemsOf(() =>
      loadJson(
        'bad-resolve.json',
        {
          primary: 'host=h password=Zq-secret sslmode=verify-ca',
          replicas: [
            { name: 'us', url: 'postgres://u:Zq-secret@h/db', passwordFile: secret },
            { name: 'ap', url: 'postgres://u@h/db', passwordFile: '/nonexistent/secret' },
          ],
        },
        { LOCKSTEP_REPLICA_NOPE_PASSWORD_FILE: other },
      ),
    );
    expect(resolved.join('\n')).not.toMatch(/Zq/);
    expect(resolved).toEqual([
      'primary: sslmode=verify-ca needs sslrootcert: the CA certificate that signed the server certificate',
      'replicas[0] ("us"): a password both in the connection string and in passwordFile: keep one',
      'replicas[1] ("ap"): cannot read passwordFile /nonexistent/secret: ENOENT',
      'LOCKSTEP_REPLICA_NOPE_PASSWORD_FILE: names no replica of the configuration',
    ]);
  });
});

/** The problems, after checking that no part of the test's password is in the message. */
function secretFreeProblemsOf(fn: () => unknown): string[] {
  const problems = problemsOf(fn);
  expect(problems.join('\n')).not.toMatch(/S3c|retPw/);
  return problems;
}

const PRIMARY = 'postgres://lockstep:S3cretPw@db/app';

describe('a configuration file that does not parse', () => {
  it('YAML: names the line, the column and the code, never the line itself', () => {
    const yaml = file('broken.yaml', `primary: ${PRIMARY}\n  replicas: x\n`);
    expect(secretFreeProblemsOf(() => loadConfig(yaml, {}))).toEqual([
      'not valid YAML at line 1, column 10 (BLOCK_AS_IMPLICIT_KEY)',
    ]);
  });

  it('YAML warnings: refused the same way, and never printed with the line', () => {
    const emitted: string[] = [];
    const onWarning = (warning: Error) => emitted.push(String(warning));
    process.on('warning', onWarning);
    const emit = vi.spyOn(process, 'emitWarning');
    try {
      const tag = file('tag.yaml', `primary: !secret ${PRIMARY}\nreplicas: []\n`);
      expect(secretFreeProblemsOf(() => loadConfig(tag, {}))).toEqual([
        'not valid YAML at line 1, column 10 (TAG_RESOLVE_FAILED)',
      ]);
      const directive = file('directive.yaml', `%YAML 1.3\n---\nprimary: ${PRIMARY}\n`);
      expect(secretFreeProblemsOf(() => loadConfig(directive, {}))).toEqual([
        'not valid YAML at line 1, column 7 (BAD_DIRECTIVE)',
      ]);
      expect(emit).not.toHaveBeenCalled();
    } finally {
      emit.mockRestore();
      process.off('warning', onWarning);
    }
    expect(emitted).toEqual([]);
  });

  it('an unknown key that is no name is shown only by its length', () => {
    const slip = file('slip.yaml', `primary: x\n${PRIMARY}: y\nreplicaz: []\n`);
    expect(secretFreeProblemsOf(() => loadConfig(slip, {}))).toContainEqual(
      '(top level): unknown keys a key of 35 characters (not shown), "replicaz"',
    );
  });

  it('JSON: a fixed reason and the place where the engine gives one', () => {
    const comma = file('comma.json', `{"primary": "${PRIMARY}",}`);
    expect(secretFreeProblemsOf(() => loadConfig(comma, {}))).toEqual([
      expect.stringMatching(/^not valid JSON: a syntax error/),
    ]);
    const after = file('after.json', `{"primary": "${PRIMARY}"}\n x`);
    expect(secretFreeProblemsOf(() => loadConfig(after, {}))).toEqual([
      'not valid JSON: a syntax error at line 2, column 2 (position 52)',
    ]);
  });
});

describe('LOCKSTEP_REPLICAS', () => {
  const env = (replicas: string) => ({ LOCKSTEP_PRIMARY: PRIMARY, LOCKSTEP_REPLICAS: replicas });

  it('that is broken JSON: says so without the text', () => {
    const problems = secretFreeProblemsOf(() =>
      loadConfig(undefined, env(`[{"name":"eu","url":"postgres://lockstep:S3cretPw@eu/app"},]`)),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^LOCKSTEP_REPLICAS: not valid JSON: .*\(the value is not shown\)$/),
    ]);
  });

  it('splits name=url only before a name, so a comma in a password stays in it', () => {
    const config = loadConfig(
      undefined,
      env('eu=postgres://lockstep:S3cretPw@eu/app, us=host=us password=a,b user=lockstep'),
    );
    expect(config.replicas.map((r) => r.name)).toEqual(['eu', 'us']);
    expect(parseConnectionString(config.replicas[1]?.url ?? '').password).toBe('a,b');
    // A raw comma in a URL's password is refused as a URL, shown without the password.
    expect(
      secretFreeProblemsOf(() =>
        loadConfig(undefined, env('eu=postgres://lockstep:S3c,retPw@eu/app')),
      ),
    ).toEqual([
      expect.stringMatching(/^replicas\[0\]\.url: got "postgres:\/\/lockstep:\*\*\*@eu\/app"/),
    ]);
  });

  it('shows a text that is no readable connection string only by its length', () => {
    const problems = secretFreeProblemsOf(() =>
      loadConfig(undefined, env('eu=postgres://lockstep:S3c@eu:retPw/app,retPw@eu/app')),
    );
    expect(problems).toEqual([
      expect.stringMatching(
        /^replicas\[0\]\.url: got a text of 49 characters \(not shown\); expected a connection string/,
      ),
    ]);
  });
});

describe('http hosts', () => {
  it('refuses an empty host, which would bind every interface', () => {
    const config = {
      primary: PRIMARY,
      replicas: [{ name: 'eu', url: PRIMARY }],
      http: { host: '' },
      bus: {
        url: 'nats://127.0.0.1:4222',
        verifyKeyFile: '/k.pem',
        agentHttp: { host: '', port: 9188 },
      },
    };
    expect(
      secretFreeProblemsOf(() => loadConfig(file('hosts.json', JSON.stringify(config)), {})),
    ).toEqual([
      expect.stringMatching(/^http\.host: got ""; expected an address to bind/),
      expect.stringMatching(/^bus\.agentHttp\.host: got ""; expected an address to bind/),
    ]);
  });
});
