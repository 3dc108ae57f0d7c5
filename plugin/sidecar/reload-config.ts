import type { Logger } from 'pino';
import { adoptReplicas, diffConfig } from '../config/config-diff.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { type LiveConfig, replicaParts } from './create-sidecar.js';
import type { Sidecar } from './sidecar.js';

/** What a reload works on. */
export interface ReloadParts {
  readonly sidecar: Sidecar;
  readonly live: LiveConfig;
  /** Reads the configuration again (file and LOCKSTEP_* variables); throws when it is not valid. */
  readonly load: () => LockstepConfig;
  readonly log: Logger;
}

/**
 * Applies a reloaded configuration to a running sidecar (SIGHUP, or the file
 * changed): replicas added, removed and replaced (a new URL) live, every other changed key only
 * logged (a restart applies it). One reload at a time; an invalid file keeps
 * the configuration in force.
 */
export class ConfigReloader {
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly parts: ReloadParts) {}

  /** Reloads after the reloads already asked for. */
  reload(reason: string): Promise<void> {
    const run = this.queue.then(() => this.reloadNow(reason));
    this.queue = run.catch((error: Error) =>
      this.parts.log.error(
        { reason, err: error.message, event: 'config-reload-failed' },
        'reloading the configuration failed',
      ),
    );
    return this.queue;
  }

  private async reloadNow(reason: string): Promise<void> {
    const { live, log, sidecar } = this.parts;
    let next: LockstepConfig;
    try {
      next = this.parts.load();
    } catch (error) {
      log.error(
        { reason, err: (error as Error).message, event: 'config-invalid' },
        'invalid configuration: the one in force stays',
      );
      return;
    }
    const change = diffConfig(live.current, next);
    if (change.needsRestart.length > 0)
      log.warn(
        {
          reason,
          keys: change.needsRestart,
          event: 'config-needs-restart',
          fix: 'restart lockstep run',
        },
        'changed keys take effect after a restart',
      );
    const added = change.added.map((r) => r.name);
    const replaced = change.replaced.map((r) => r.name);
    log.info(
      { reason, added, removed: change.removed, replaced, event: 'config-reloaded' },
      'configuration reloaded',
    );
    live.current = adoptReplicas(live.current, change);
    // A removal may wait for a round in flight to finish on that replica: it goes on in the background.
    for (const name of change.removed)
      void sidecar
        .removeReplica(name)
        .catch((error: Error) =>
          log.error(
            { replica: name, err: error.message, event: 'replica-remove-failed' },
            'removing the replica failed',
          ),
        );
    for (const replica of change.added) {
      const { target, node } = replicaParts(live, replica, log);
      await sidecar.addReplica(target, node);
    }
    // A new URL may reach another database: the old one's agent goes, one for the new URL comes.
    for (const replica of change.replaced) {
      const { target, node } = replicaParts(live, replica, log);
      await sidecar.replaceReplica(target, node);
    }
  }
}
