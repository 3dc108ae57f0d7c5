import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PublishWindow } from '../../plugin/sidecar/publish-window.js';

const limits = { messages: 4, bytes: 100 };

describe('PublishWindow', () => {
  it('confirms a packet only once every message up to its last is stored, in order', () => {
    const w = new PublishWindow<string>(10, limits);
    expect(w.send(10)).toBe(11);
    expect(w.send(10, 'p1')).toBe(12);
    expect(w.send(10, 'p2')).toBe(13);
    expect(w.acked(13, 13)).toEqual([]); // p2 stored, p1 not yet
    expect(w.acked(12, 12)).toEqual([]);
    expect(w.acked(11, 11)).toEqual(['p1', 'p2']);
    expect(w.confirmed).toBe(13);
    expect(w.empty && w.settled).toBe(true);
  });

  it('confirms nothing from a failed message on, even what is acknowledged after it', () => {
    const w = new PublishWindow<string>(0, limits);
    w.send(10, 'p1');
    w.send(10, 'p2');
    w.send(10, 'p3');
    w.failed(2, new Error('timed out'));
    expect(w.hasRoom(1)).toBe(false);
    expect(() => w.send(1)).toThrow();
    expect(w.acked(3, 3)).toEqual([]); // stored after a message that may not be: not ours to confirm
    expect(w.settled).toBe(false);
    expect(w.acked(1, 1)).toEqual(['p1']);
    expect(w.settled).toBe(true);
    expect(w.confirmed).toBe(1);
    expect(w.failure?.message).toBe('timed out');
  });

  it('fails when a message is stored elsewhere than it must be', () => {
    const w = new PublishWindow<string>(5, limits);
    w.send(10, 'p');
    expect(w.acked(6, 7)).toEqual([]);
    expect(w.failure?.message).toMatch(/stored at sequence 7/);
  });

  it('bounds what is in flight by messages and bytes, but always lets one in', () => {
    const w = new PublishWindow<string>(0, limits);
    expect(w.hasRoom(500)).toBe(true);
    w.send(500);
    expect(w.hasRoom(1)).toBe(false);
    w.acked(1, 1);
    for (let i = 0; i < 4; i++) w.send(1);
    expect(w.hasRoom(1)).toBe(false);
  });

  it('confirms exactly the stored prefix, in order, whatever order outcomes come in', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('send' as const), bytes: fc.nat(40), final: fc.boolean() }),
      fc.record({ kind: fc.constant('ack' as const), pick: fc.nat(), wrong: fc.nat(20) }),
      fc.record({ kind: fc.constant('fail' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.nat(1000), fc.array(step, { maxLength: 80 }), (base, steps) => {
        const w = new PublishWindow<number>(base, limits);
        /** Per message sent: its packet (or null) and its outcome. */
        const sent: { packet: number | null; outcome: 'sent' | 'ok' | 'bad' }[] = [];
        const confirmed: number[] = [];
        let packets = 0;
        for (const s of steps) {
          if (s.kind === 'send') {
            if (!w.hasRoom(s.bytes)) continue;
            const packet = s.final ? ++packets : null;
            expect(w.send(s.bytes, packet)).toBe(base + sent.length + 1);
            sent.push({ packet, outcome: 'sent' });
            continue;
          }
          const open = sent.flatMap((m, i) => (m.outcome === 'sent' ? [i] : []));
          if (open.length === 0) continue;
          const i = open[s.pick % open.length] as number;
          const sequence = base + i + 1;
          if (s.kind === 'ack') {
            // One in three acknowledgements names a wrong sequence (someone else's message in between).
            const at = s.wrong % 3 === 0 ? sequence + 1 + s.wrong : sequence;
            sent[i] = { packet: sent[i]?.packet ?? null, outcome: at === sequence ? 'ok' : 'bad' };
            confirmed.push(...w.acked(sequence, at));
          } else {
            sent[i] = { packet: sent[i]?.packet ?? null, outcome: 'bad' };
            w.failed(sequence, new Error('lost'));
          }
          // The model: the stored prefix, up to the first message not stored.
          const prefix = sent.findIndex((m) => m.outcome !== 'ok');
          const stored = prefix === -1 ? sent : sent.slice(0, prefix);
          expect(confirmed).toEqual(stored.flatMap((m) => (m.packet === null ? [] : [m.packet])));
          expect(w.confirmed).toBe(base + stored.length);
          expect(w.failure !== null).toBe(sent.some((m) => m.outcome === 'bad'));
          expect(w.settled).toBe(sent.every((m) => m.outcome !== 'sent'));
        }
        expect(w.after).toBe(base + sent.length);
      }),
    );
  });
});
