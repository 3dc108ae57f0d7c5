import { InvalidArgumentError } from 'commander';

/** Parses a positive integer option (commander reports a bad value as a usage error). */
export function positiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError('a positive integer');
  return value;
}

/** The options of `lockstep attach`. */
export interface AttachCommandOptions {
  config?: string;
  resync?: string[];
  createSchema?: boolean;
  copyConcurrency?: number;
}
