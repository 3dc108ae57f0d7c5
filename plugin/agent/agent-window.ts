import { PacketWindow } from '../sidecar/packet-window.js';

/**
 * The packet window of one agent: the in-process window, which also tells
 * whether its one agent reads it now. A window without an active cursor
 * bounds nothing (it drops its oldest parts to make room), so the pump stops
 * reading the bus while the replica is halted instead of reading it for
 * nothing; the agent finds its packet again, or asks for a rewind, once back.
 */
export class AgentWindow extends PacketWindow {
  /** The agent has a cursor (it applies, or waits for the next part). */
  active = false;

  override setCursor(agent: string, seq: number | null): void {
    this.active = seq !== null;
    super.setCursor(agent, seq);
  }
}
