import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { LockstepProcess } from './lockstep-process.js';
import type { AttachedClusters } from './use-attached.js';

/** A running `lockstep run` and an application connection as `user`, for the describe block. */
export interface AppSidecar {
  readonly sidecar: LockstepProcess;
  readonly app: pg.Client;
}

/** Starts the sidecar and connects as `user` before the block's tests; stops both after. */
export function useAppSidecar(clusters: AttachedClusters, user = 'app'): AppSidecar {
  let sidecar: LockstepProcess | undefined;
  let app: pg.Client | undefined;
  beforeAll(async () => {
    sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    app = new pg.Client({ connectionString: clusters.primary.urlFor({ user }) });
    await app.connect();
  });
  afterAll(async () => {
    await app?.end();
    sidecar?.kill('SIGTERM');
    await sidecar?.exited;
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('used before beforeAll ran');
    return value;
  };
  return {
    get sidecar() {
      return started(sidecar);
    },
    get app() {
      return started(app);
    },
  };
}
