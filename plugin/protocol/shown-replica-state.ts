/** States of a replica that follows the stream (what a pause stops). */
const FOLLOWING = new Set(['streaming', 'catching-up']);

/**
 * A replica's state as status and metrics show it: one that follows the
 * stream shows `paused` while `lockstep pause` holds (nothing new reaches
 * it), in process and with `bus` alike; any other state shows as it is.
 */
export function shownReplicaState(state: string, paused: boolean): string {
  return paused && FOLLOWING.has(state) ? 'paused' : state;
}
