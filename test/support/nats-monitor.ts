import type { NatsNode } from './nats-node.js';

/** What a node's `jsz` says of a stream: its leader and its consumers' leaders. */
export interface StreamDetail {
  name: string;
  state?: { last_seq?: number };
  cluster?: {
    leader?: string;
    replicas?: { name: string; current?: boolean; lag?: number; active?: number }[];
  };
  consumer_detail?: { name: string; cluster?: { leader?: string } }[];
}

export async function monitor(node: NatsNode, endpoint: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${node.httpPort}/${endpoint}`, {
    signal: AbortSignal.timeout(2_000),
  });
  if (!response.ok) throw new Error(`${endpoint}: ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

/** What `node` says of its own copy of `stream` (none when it hosts none). */
export async function nodeStreamDetails(node: NatsNode, stream: string): Promise<StreamDetail[]> {
  const jsz = await monitor(node, 'jsz?accounts=true&streams=true&consumers=true');
  const accounts = (jsz.account_details ?? []) as { stream_detail?: StreamDetail[] }[];
  return accounts.flatMap((a) => a.stream_detail ?? []).filter((d) => d.name === stream);
}

/** The names of the streams any running node hosts. */
export async function hostedStreams(nodes: readonly NatsNode[]): Promise<string[]> {
  const names = new Set<string>();
  for (const node of nodes.filter((n) => n.running)) {
    const jsz = await monitor(node, 'jsz?accounts=true&streams=true').catch(() => ({}));
    const accounts = ((jsz as Record<string, unknown>).account_details ?? []) as {
      stream_detail?: StreamDetail[];
    }[];
    for (const detail of accounts.flatMap((a) => a.stream_detail ?? [])) names.add(detail.name);
  }
  return [...names];
}

/** The running nodes whose full health check fails (their index in `nodes`), and why. */
export async function unhealthy(
  nodes: readonly NatsNode[],
): Promise<{ node: number; why: string }[]> {
  const views = await Promise.all(
    nodes.map(async (node, index) => {
      if (!node.running) return null;
      try {
        await monitor(node, 'healthz');
        return null;
      } catch (error) {
        return { node: index, why: `${node.name}: ${(error as Error).message}` };
      }
    }),
  );
  return views.filter((v) => v !== null);
}
