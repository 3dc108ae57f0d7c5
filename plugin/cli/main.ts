#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

/** Builds the `lockstep` command line. Commands are added here as they are implemented. */
export function buildProgram(): Command {
  const pkg = JSON.parse(
    readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  return new Command('lockstep')
    .description(
      'Keeps replica PostgreSQL databases in step with a primary: versioned packets from logical ' +
        'replication, deltas for replicas that fall behind, two-phase commit across replicas.',
    )
    .version(pkg.version)
    .showHelpAfterError();
}

await buildProgram().parseAsync(process.argv);
