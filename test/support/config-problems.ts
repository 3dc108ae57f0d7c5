import { expect } from 'vitest';
import { ConfigError } from '../../plugin/config/load-config.js';

/** The problems of the ConfigError `fn` throws (fails the test when it throws none). */
export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}
