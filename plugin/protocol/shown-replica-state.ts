/** States of a replica that follows the stream (what a pause stops). */
const FOLLOWING = new Set(['streaming', 'catching-up']);

/** Whether a replica in `state` follows the stream. */
export function isFollowing(state: string): boolean {
  return FOLLOWING.has(state);
}

/**
 * A replica's state as status and metrics show it: one that follows the
 * stream shows `paused` while `lockstep pause` holds (nothing new reaches
 * it), in process and with `bus` alike; any other state shows as it is.
 */
export function shownReplicaState(state: string, paused: boolean): string {
  return paused && isFollowing(state) ? 'paused' : state;
}
