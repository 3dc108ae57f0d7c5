import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { probeBackend } from '../../adapters/postgres/connection/backend-probe.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 0 });

describe('probeBackend', () => {
  it('does not give a backend up when the server refuses the probe with an error of its own', async () => {
    const { primary } = clusters;
    const [{ pid }] = (await primary.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [
      { pid: number },
    ];
    // The server answers (3D000: no such database): alive, so the watched statement goes on.
    const refused = primary.urlFor({ database: 'no_such_database' });
    expect(await probeBackend({ url: refused, pid, boundMs: 5_000 })).toBeNull();
  });

  it('gives it up when nothing answers within the bound (a port that accepts and stays silent)', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      expect(await probeBackend({ url, pid: 1, boundMs: 500 })).toBe('did not answer');
    } finally {
      silent.close();
    }
  });
});
