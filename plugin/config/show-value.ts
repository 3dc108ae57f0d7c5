import { redactUrl } from '../ports/connection-secrets.js';
import { looksLikeKeywordDsn, parseKeywordDsn } from '../ports/keyword-dsn.js';
import { redactBusUrl } from './bus-settings.js';

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Whether a key holds connection strings, or contains keys that do (the top
 * level, `primary`, `replicas`, `bus`): a value there that is not a readable
 * URL or DSN may be a piece of one, password included.
 */
function holdsConnections(path: readonly PropertyKey[]): boolean {
  const [first, second] = path;
  if (first === undefined || first === 'primary' || first === 'replicas') return true;
  return first === 'bus' && (second === undefined || second === 'url');
}

/** A URL or keyword DSN with its password replaced, or null when it does not read as one. */
function redactedConnection(text: string): string | null {
  // NATS first: a list of servers read as one URL hides only its first password.
  if (/^(nats|tls):\/\//i.test(text)) return redactBusUrl(text);
  if (URL_SCHEME.test(text)) {
    try {
      new URL(text);
    } catch {
      return null;
    }
    return redactUrl(text);
  }
  if (looksLikeKeywordDsn(text)) {
    try {
      parseKeywordDsn(text);
    } catch {
      return null;
    }
    return redactUrl(text);
  }
  return null;
}

/** What a text shows: itself, its redacted form, or (when it may hold a password) only its length. */
function shownText(text: string, key: PropertyKey | undefined, guarded: boolean): string | null {
  const redacted = redactedConnection(text);
  if (redacted !== null) return redacted;
  const connectionLike = URL_SCHEME.test(text) || looksLikeKeywordDsn(text);
  if (connectionLike) return null;
  if (!guarded || (key === 'name' && /^[\w-]{1,63}$/.test(text))) return text;
  return null;
}

const lengthOf = (text: string) => `a text of ${text.length} characters (not shown)`;

/**
 * Shows a value in an error without ever showing a password: a connection
 * string with its password replaced by `***`; a text that reads as one but
 * does not parse, or any other text where connection strings go (a
 * replica's name excepted), only by its length.
 */
export function showValue(value: unknown, path: readonly PropertyKey[] = []): string {
  if (value === undefined) return 'missing';
  const guarded = holdsConnections(path);
  const last = path[path.length - 1];
  if (typeof value === 'string') {
    const shown = shownText(value, last, guarded);
    return shown === null ? lengthOf(value) : JSON.stringify(shown);
  }
  const text = JSON.stringify(value, (key, v) =>
    typeof v === 'string' ? (shownText(v, key, guarded) ?? `(${lengthOf(v)})`) : v,
  );
  return text && text.length > 120 ? `${text.slice(0, 117)}...` : (text ?? String(value));
}
