import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseFaultSetting } from '../../plugin/coordinator/fault-point.js';
import {
  makeGid,
  makeMigrationGid,
  migrationGidTime,
  parseGid,
} from '../../plugin/protocol/gid.js';

describe('gids', () => {
  it('round-trip, use only [A-Za-z0-9_], and stay far below 200 bytes', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z_][a-z0-9_]{0,40}$/),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (stream, version, round, epoch) => {
          const gid = makeGid({ stream, version, round, epoch });
          expect(gid).toMatch(/^[A-Za-z0-9_]+$/);
          expect(gid.length).toBeLessThan(120);
          expect(parseGid(gid, stream)).toEqual({ stream, version, round, epoch });
        },
      ),
    );
  });

  it("never claims another stream's gid or a foreign transaction", () => {
    const gid = makeGid({ stream: 'a_b', version: 5, round: 3, epoch: 2 });
    expect(parseGid(gid, 'a')).toBeNull();
    expect(parseGid(gid, 'a_b')).toEqual({ stream: 'a_b', version: 5, round: 3, epoch: 2 });
    expect(parseGid('app_tx_1', 'a')).toBeNull();
    expect(() => makeGid({ stream: "x'; drop", version: 1, round: 1, epoch: 1 })).toThrow(
      RangeError,
    );
  });

  it('never reads a gid of stream s as one of a stream named s_<digits>, old or new form', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/),
        fc.nat(99),
        fc.nat(99),
        fc.nat(99),
        (stream, version, round, epoch) => {
          const newer = makeGid({ stream, version, round, epoch });
          const older = `lockstep_${stream}_${version}_${round}`;
          for (const gid of [newer, older])
            expect(parseGid(gid, `${stream}_${version}`)).toBeNull();
          expect(parseGid(older, stream)).toEqual({ stream, version, round, epoch: 0 });
        },
      ),
    );
  });

  it("read a migration gid's time back, whatever the stream name, and nothing else's", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_]{1,63}$/),
        fc.nat(),
        fc.nat(),
        (stream, time, attempt) => {
          expect(migrationGidTime(makeMigrationGid(stream, time, attempt))).toBe(time);
        },
      ),
    );
    expect(migrationGidTime(makeMigrationGid('s_m5_6', 1764561061000, 2))).toBe(1764561061000);
    expect(migrationGidTime(makeGid({ stream: 's', version: 5, round: 3, epoch: 1 }))).toBeNull();
    expect(migrationGidTime('lockstep_s_5_3')).toBeNull();
    expect(migrationGidTime('app_m5_1')).toBeNull();
  });

  it('two activations never share a gid for the same version and round', () => {
    const first = makeGid({ stream: 's', version: 7, round: 4, epoch: 1 });
    const second = makeGid({ stream: 's', version: 7, round: 4, epoch: 2 });
    expect(first).not.toBe(second);
  });
});

describe('fault settings', () => {
  it('read a point with an optional count and refuse anything else', () => {
    expect(parseFaultSetting('after-prepare:2')).toEqual({
      point: 'after-prepare',
      count: 2,
      action: 'kill',
    });
    expect(parseFaultSetting('after-decision')).toEqual({
      point: 'after-decision',
      count: 1,
      action: 'kill',
    });
    expect(parseFaultSetting('after-commit:1:cut')).toMatchObject({ action: 'cut' });
    expect(parseFaultSetting('barrier:1:stop')).toEqual({
      point: 'barrier',
      count: 1,
      action: 'stop',
    });
    expect(() => parseFaultSetting('after-commit:1:explode')).toThrow(/invalid fault point/);
    expect(() => parseFaultSetting('before-anything')).toThrow(/invalid fault point/);
  });
});
