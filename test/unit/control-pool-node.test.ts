import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { StatusStore } from '../../adapters/postgres/control/status-store.js';
import { failedNode } from '../../plugin/ports/failed-node.js';

/** AuthenticationOk, then ReadyForQuery (idle): a login that asks for nothing. */
const LOGGED_IN = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49]);

/** A server that logs anyone in and then answers no query: a host frozen after the login. */
const sockets = new Set<net.Socket>();
const server = net.createServer((socket) => {
  sockets.add(socket);
  socket.on('error', () => undefined);
  socket.once('data', () => socket.write(LOGGED_IN));
});
let url = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  url = `postgres://lockstep@127.0.0.1:${port}/shop?sslmode=disable`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

describe("the primary's control pools", () => {
  it('name the primary on a query it never answered, which no step wrapped', async () => {
    const status = new StatusStore(url, 'lockstep', 300);
    const decisions = new DecisionLog(url, 'lockstep', undefined, 300);
    try {
      const unanswered = [
        await status.lastPositions().catch((error: unknown) => error),
        await decisions.read(['gid-1']).catch((error: unknown) => error),
      ];
      for (const error of unanswered) {
        expect(String(error)).toMatch(/timeout/i);
        expect(failedNode(error)).toBe('primary');
      }
    } finally {
      await Promise.all([status.close(), decisions.close()]);
    }
  });
});
