/** One sample of a metric from Prometheus text, by its labels. */
export function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

/**
 * GET on a process's endpoints on 127.0.0.1: status code and body. A request
 * unanswered for 15 s fails (fetch itself waits 300 s), so a polling test
 * retries it and a stuck endpoint shows as such, not as the test's timeout.
 */
export const getter = (port: number) => async (path: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    signal: AbortSignal.timeout(15_000),
  });
  return { code: response.status, text: await response.text() };
};
export type Get = ReturnType<typeof getter>;

/** `/readyz`: its code and document. */
export const readyz = async (get: Get) => {
  const { code, text } = await get('/readyz');
  return { code, ...(JSON.parse(text) as { ready: boolean; role: string; reasons: string[] }) };
};
