import { BusLeaderBehindError, BusRefusedError } from '../ports/packet-bus.js';
import type { PublishFailure } from './bus-publisher-snapshot.js';

/** A failed try to publish as logged: its event, the fields beside it, the message. */
export interface PublishFailureReport {
  readonly event: PublishFailure;
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** What a failure to publish is called (the next try reads where the bus ends again). */
export function publishFailure(error: Error): PublishFailureReport {
  const fields = { err: error.message, fix: (error as { fix?: string }).fix };
  if (error instanceof BusRefusedError)
    return {
      event: 'bus-refused',
      fields,
      message: 'the bus refused a packet: reading where it ends again',
    };
  if (error instanceof BusLeaderBehindError)
    return {
      event: 'bus-leader-behind',
      fields: {
        ...fields,
        end: error.end,
        acknowledged: error.acknowledged,
        leader: error.leader,
        stepDown: error.stepDown,
      },
      message: 'the bus stream leader is behind: reading where it ends again',
    };
  return { event: 'bus-unavailable', fields, message: 'cannot publish to the bus' };
}
