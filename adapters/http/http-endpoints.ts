import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the endpoints serve. */
export interface EndpointHandlers {
  /** `/readyz`. */
  readiness(): { ready: boolean; reasons: readonly string[] };
  /** `/metrics`, in Prometheus text format. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** `/status`: the JSON of `status --json`. */
  status(): Promise<unknown>;
}

/** Running endpoints. */
export interface Endpoints {
  /** Where they listen (the port is the real one when 0 asked for any). */
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * `/healthz` (the process answers), `/readyz` (200, or 503 with the reasons),
 * `/metrics` and `/status`, on `host:port` — loopback unless configured
 * otherwise. GET only; anything else is 404/405.
 */
export async function serveEndpoints(
  host: string,
  port: number,
  handlers: EndpointHandlers,
): Promise<Endpoints> {
  const server = http.createServer((request, response) => {
    const send = (code: number, type: string, body: string) => {
      response.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(body);
    };
    const json = (code: number, body: unknown) =>
      send(code, 'application/json', `${JSON.stringify(body, null, 2)}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return send(405, 'text/plain', 'GET only\n');
    const path = (request.url ?? '/').split('?')[0];
    void (async () => {
      switch (path) {
        case '/healthz':
          return send(200, 'text/plain', 'ok\n');
        case '/readyz': {
          const r = handlers.readiness();
          return json(r.ready ? 200 : 503, r);
        }
        case '/metrics': {
          const m = await handlers.metrics();
          return send(200, m.contentType, m.body);
        }
        case '/status':
          return json(200, await handlers.status());
        default:
          return send(404, 'text/plain', 'not found: /healthz, /readyz, /metrics, /status\n');
      }
    })().catch((error: Error) => json(500, { error: error.message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
