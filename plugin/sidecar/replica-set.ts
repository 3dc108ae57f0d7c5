import type { Logger } from 'pino';
import type { RecoveryReport } from '../coordinator/recover-prepared.js';
import type { PhaseTwoNode } from '../coordinator/round-participant.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import type { ReplicaAgent, ReplicaTarget } from '../replica/replica-agent.js';
import { sleep } from '../support/sleep.js';

/** What adding and removing replicas needs of the sidecar they belong to. */
export interface ReplicaSetHost {
  /** The sidecar's agents (changed in place). */
  readonly agents: ReplicaAgent[];
  /** Phase two and recovery per node (changed in place). */
  readonly nodes: Map<string, PhaseTwoNode>;
  readonly log: Logger;
  readonly stream: string;
  /** An agent wired to the sidecar's window and events. */
  newAgent(target: ReplicaTarget): ReplicaAgent;
  /** Starts the agent within the current activation, or leaves it to the next one. */
  startAgent(agent: ReplicaAgent): void;
  /** Drops what the sidecar kept about a replica (positions, stale and resync marks). */
  dropReplica(name: string): void;
  /** This process is the active sidecar (a standby leaves rounds and status to the active one). */
  active(): boolean;
  /** Takes the replica out of the round in flight once it is decided; false while undecided. */
  leaveRound(name: string): boolean;
  /** Finishes the stream's gids prepared on one node, by the decision log. */
  recover(node: PhaseTwoNode): Promise<RecoveryReport>;
  /** Deletes the replica's row on the primary (state, last position, stale mark). */
  forgetStatus(name: string): Promise<void>;
}

/**
 * Replicas added to and removed from a running sidecar (a reloaded
 * configuration), without a restart: the other replicas keep applying.
 * An added replica holds the slot at once (its position is unknown until
 * `lockstep attach` places it); a removed one stops holding it at once.
 */
export class ReplicaSet {
  /** Removals still finishing (rounds, prepared transactions, status), by name. */
  private readonly removing = new Map<string, Promise<void>>();
  /** Replicas being replaced (a new URL): out of the list for a while, not yet given up. */
  private readonly replacing = new Set<string>();

  constructor(private readonly host: ReplicaSetHost) {}

  /** Adds a replica's agent and phase-two node; a removal of the same name finishes first. */
  async add(target: ReplicaTarget, node: PhaseTwoNode): Promise<void> {
    await this.removing.get(target.node);
    const { agents, nodes, log } = this.host;
    if (agents.some((a) => a.name === target.node)) return;
    nodes.set(target.node, node);
    this.host.dropReplica(target.node);
    const agent = this.host.newAgent(target);
    agents.push(agent);
    // It holds the slot from now on.
    log.info(
      {
        replica: target.node,
        event: 'replica-added',
        fix: 'lockstep attach copies it and places it in the stream',
      },
      'replica added',
    );
    this.host.startAgent(agent);
  }

  /**
   * Replaces a replica whose URL changed: the old agent is removed, then one
   * for the new URL added. Meanwhile {@link holding} is true: the slot must
   * not move past the position of a replica that is only reconnected.
   */
  async replace(target: ReplicaTarget, node: PhaseTwoNode): Promise<void> {
    this.replacing.add(target.node);
    try {
      this.host.log.info(
        { replica: target.node, event: 'replica-replaced' },
        'replica has a new URL: replacing it',
      );
      await this.remove(target.node);
      await this.add(target, node);
    } finally {
      this.replacing.delete(target.node);
    }
  }

  /** A replacement is under way: the slot waits for it. */
  get holding(): boolean {
    return this.replacing.size > 0;
  }

  /** Removes a replica: its agent stops (an open batch rolls back) and it no longer holds WAL or rounds. */
  remove(name: string): Promise<void> {
    const running = this.removing.get(name);
    if (running) return running;
    const removal = this.removeNow(name).finally(() => this.removing.delete(name));
    this.removing.set(name, removal);
    return removal;
  }

  /** Resolves once every removal started so far has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.removing.values()]);
  }

  private async removeNow(name: string): Promise<void> {
    const { agents, nodes, log } = this.host;
    const index = agents.findIndex((a) => a.name === name);
    if (index < 0) return;
    const [agent] = agents.splice(index, 1) as [ReplicaAgent];
    // Out of the list: no new round takes it, the slot and the window no longer wait for it.
    agent.stop();
    this.host.dropReplica(name);
    await agent.waitStopped();
    await this.roundsWithout(name);
    const node = nodes.get(name);
    nodes.delete(name);
    if (node && this.host.active()) await this.finishPrepared(name, node);
    else if (node)
      // Stopping or deposed meanwhile: the next active sidecar no longer has it configured.
      log.warn(
        {
          replica: name,
          event: 'removed-replica-unchecked',
          fix: `look for lockstep gids in ${name}'s pg_prepared_xacts: put it back in the configuration and run lockstep recover`,
        },
        'removed replica not checked for prepared gids',
      );
    await node?.close();
    if (this.host.active()) {
      await this.host.forgetStatus(name).catch((error: Error) =>
        log.warn(
          // Status may list it until the next start.
          { replica: name, err: error.message, event: 'replica-status-kept' },
          "cannot delete the removed replica's status",
        ),
      );
    }
    // It no longer holds WAL or takes part in rounds; its data is left as it is.
    log.info({ replica: name, event: 'replica-removed' }, 'replica removed');
  }

  /**
   * Waits until the round in flight is decided (votes have a deadline), then
   * takes the replica out of it: a dead replica being removed never holds
   * the round's phase two; its gid is finished below, by the decision log.
   */
  private async roundsWithout(name: string): Promise<void> {
    let waited = 0;
    while (!this.host.leaveRound(name)) {
      if (waited % 30_000 === 5_000)
        this.host.log.warn(
          { replica: name, event: 'replica-remove-waits' },
          'removal waits for the round in flight',
        );
      await sleep(100);
      waited += 100;
    }
  }

  /**
   * The stream's gids prepared on a replica being removed are finished by the
   * decision log now: once it is out of the configuration neither the
   * sidecar's recovery nor `lockstep recover` reaches it. What cannot be
   * finished (unreachable, or a migration's gid) is logged with the fix.
   */
  private async finishPrepared(name: string, node: PhaseTwoNode): Promise<void> {
    const { log } = this.host;
    const report = await this.host.recover(node).catch(
      (error: Error): RecoveryReport => ({
        resolved: [],
        failed: [{ node: name, error: error.message, unreachable: isConnectionFailure(error) }],
      }),
    );
    for (const r of report.resolved)
      log.warn(
        { replica: name, gid: r.gid, action: r.action, event: 'removed-replica-recovered' },
        'removed replica: gid finished by the decision log',
      );
    let left: Awaited<ReturnType<PhaseTwoNode['list']>>;
    try {
      left = await node.list(this.host.stream);
    } catch (error) {
      log.error(
        {
          replica: name,
          err: (error as Error).message,
          event: 'removed-replica-unchecked',
          fix: `should ${name} come back, look for lockstep gids in its pg_prepared_xacts: put it back in the configuration and run lockstep recover`,
        },
        'cannot check removed replica for prepared gids',
      );
      return;
    }
    for (const prepared of left)
      log.error(
        {
          replica: name,
          gid: prepared.gid,
          kind: prepared.kind,
          event: 'removed-replica-prepared',
          fix:
            prepared.kind === 'migration'
              ? `the lockstep migrate or exec that prepared it finishes it; if none runs, put ${name} back in the configuration and run lockstep recover`
              : `lockstep recover no longer reaches ${name}: put it back in the configuration and run lockstep recover, or run on it COMMIT PREPARED '${prepared.gid}' if lockstep.decisions on the primary records commit for it, else ROLLBACK PREPARED '${prepared.gid}'`,
        },
        'gid stays prepared on removed replica',
      );
  }
}
