import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { resolveNodes } from './config-connections.js';
import {
  ENVIRONMENT_KEYS,
  EnvironmentValueError,
  readEnvironmentValue,
} from './config-environment.js';
import { configSchema, type LockstepConfig } from './config-schema.js';
import { showValue } from './show-value.js';
import { jsonSyntaxProblem, yamlSyntaxProblem } from './syntax-error.js';

/** A configuration that cannot be used: every problem names its key or place, what was found (a value that may hold a password only by its length) and what is expected. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The YAML text's value. Warnings count as errors: the library would print
 * them with the source line (a connection URL, say) through
 * process.emitWarning, and a tag it cannot resolve is no config to run on.
 */
function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, logLevel: 'silent' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw problem;
  return doc.toJS();
}

/** Reads a JSON or YAML file into a plain object. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [
      `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? error}`,
    ]);
  }
  const json = /\.json$/i.test(file);
  let parsed: unknown;
  try {
    parsed = json ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(file, [json ? jsonSyntaxProblem(error, text) : yamlSyntaxProblem(error)]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(file, [
      'the file must hold an object with keys such as "primary" and "replicas"',
    ]);
  }
  return parsed as Record<string, unknown>;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isObject(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

function getPath(source: unknown, path: readonly PropertyKey[]): unknown {
  let node = source;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  input: unknown,
  variables: ReadonlyMap<string, string> = new Map(),
): string {
  const key = issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
    .join('.')
    .replace(/\.\[/g, '[');
  const variable = variables.get(issue.path.filter((p) => typeof p === 'string').join('.'));
  const where = `${key || '(top level)'}${variable ? ` (from ${variable})` : ''}`;
  if (issue.code === 'unrecognized_keys') {
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(shownKey).join(', ')}`;
  }
  const value = showValue(getPath(input, issue.path), issue.path);
  const expected = issue.message.replace(/^Invalid (input|option): /, '').replace(/^expected /, '');
  return `${where}: got ${value}; expected ${expected}`;
}

/** An unknown key as an error shows it: a key that is no name (a URL a YAML slip made a key) only by its length. */
const shownKey = (key: string) =>
  /^[\w.-]{1,63}$/.test(key) ? `"${key}"` : `a key of ${key.length} characters (not shown)`;

/**
 * Loads the configuration: the file (JSON or YAML, optional when the variables
 * say everything), then `LOCKSTEP_*` variables on top, validated by one schema.
 */
export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LockstepConfig {
  const input: Record<string, unknown> = file ? readConfigFile(file) : {};
  const variables = new Map<string, string>();
  const unreadable: string[] = [];
  for (const key of ENVIRONMENT_KEYS) {
    const text = env[key.variable];
    if (text === undefined || text === '') continue;
    // LOCKSTEP_PRIMARY replaces the file's primary URL, keeping a passwordFile given with it.
    const path =
      key.path[0] === 'primary' && isObject(input.primary) ? ['primary', 'url'] : key.path;
    try {
      setPath(input, path, readEnvironmentValue(key.kind, text));
    } catch (error) {
      if (!(error instanceof EnvironmentValueError)) throw error;
      unreadable.push(`${key.variable}: ${error.message} (the value is not shown)`);
    }
    variables.set(path.join('.'), key.variable);
  }
  if (unreadable.length > 0) throw new ConfigError('environment', unreadable);
  return validateConfig(input, { source: file ?? 'environment', env, variables });
}

/**
 * Validates a configuration object (defaults filled in) and resolves each
 * node's connection; the demo builds its configuration this way in code.
 */
export function validateConfig(
  input: Record<string, unknown>,
  options: {
    readonly source?: string;
    readonly env?: NodeJS.ProcessEnv;
    /** Which `LOCKSTEP_*` variable set which key, for the messages. */
    readonly variables?: ReadonlyMap<string, string>;
  } = {},
): LockstepConfig {
  const source = options.source ?? 'configuration';
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => describeIssue(issue, input, options.variables)),
    );
  }
  const { config, problems } = resolveNodes(result.data, options.env ?? process.env);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}
