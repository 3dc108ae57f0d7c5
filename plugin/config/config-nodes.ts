import type { LockstepConfig } from './config-schema.js';

/** A node of the configuration, by the name errors and status use. */
export interface ConfigNode {
  readonly name: string;
  readonly url: string;
}

/** The primary (named `primary`) and every replica, in configuration order. */
export function configNodes(config: Pick<LockstepConfig, 'primary' | 'replicas'>): ConfigNode[] {
  return [{ name: 'primary', url: config.primary }, ...config.replicas];
}
