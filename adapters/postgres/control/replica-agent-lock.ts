import type { ReplicaLockPort } from '../../../plugin/ports/packet-reader.js';
import { AdvisoryLockSession } from './advisory-lock-session.js';

/**
 * One `lockstep agent` per replica and stream: a session advisory lock on the
 * replica, `(hashtext('lockstep.agent'), hashtext(<stream>))`, held on a
 * connection of its own. When its agent dies the session ends and the lock is
 * free for an agent standing by. The replica's compare-and-set on its
 * position keeps two writers safe anyway; the lock keeps them from fighting
 * over it.
 */
export class ReplicaAgentLock implements ReplicaLockPort {
  private readonly session: AdvisoryLockSession;

  constructor(node: string, url: string, stream: string, queryTimeoutMs?: number) {
    this.session = new AdvisoryLockSession({
      node,
      url,
      application: 'lockstep-agent-lock',
      kind: 'lockstep.agent',
      name: stream,
      ...(queryTimeoutMs ? { queryTimeoutMs } : {}),
    });
  }

  get held(): boolean {
    return this.session.held;
  }

  tryAcquire(): Promise<boolean> {
    return this.session.tryAcquire();
  }

  onLost(listener: () => void): void {
    this.session.onLost(listener);
  }

  verify(): Promise<boolean> {
    return this.session.verify();
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
