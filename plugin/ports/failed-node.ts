/**
 * The node a driver error came from, stamped on it by the connection that
 * ran the query: an error no step wrapped can still name its node.
 */
const FAILED_NODE = 'lockstepNode';

/** Marks `error` (an object) as coming from `node`, unless it names one already; returns it. */
export function stampFailedNode<T>(error: T, node: string): T {
  // A frozen or sealed error cannot carry the stamp: it stays unnamed rather than throw here.
  if (
    typeof error === 'object' &&
    error !== null &&
    Object.isExtensible(error) &&
    !(FAILED_NODE in error)
  )
    Object.defineProperty(error, FAILED_NODE, { value: node, enumerable: false });
  return error;
}

/** The node stamped on `error`, if any. */
export function failedNode(error: unknown): string | undefined {
  const node = (error as Record<string, unknown> | null | undefined)?.[FAILED_NODE];
  return typeof node === 'string' ? node : undefined;
}
