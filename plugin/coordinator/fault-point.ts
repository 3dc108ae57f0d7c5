/**
 * Named points of a round where tests inject faults (DESIGN.md, "Fault tests"):
 * after `count` participants prepared, after the decision was recorded, after
 * `count` COMMIT PREPAREDs.
 */
export type FaultPoint = 'after-prepare' | 'after-decision' | 'after-commit';

/** Called at each point; a test's hook may crash the process there. */
export type FaultHook = (point: FaultPoint, count: number) => void;

/** A parsed fault setting: `point` or `point:count`. */
export interface FaultSetting {
  readonly point: FaultPoint;
  readonly count: number;
}

const POINTS: readonly FaultPoint[] = ['after-prepare', 'after-decision', 'after-commit'];

/** Reads `after-prepare:1`, `after-decision`, `after-commit:2`; throws on anything else. */
export function parseFaultSetting(text: string): FaultSetting {
  const [point, count = '1'] = text.trim().split(':');
  if (!POINTS.includes(point as FaultPoint) || !/^\d+$/.test(count)) {
    throw new Error(
      `invalid fault point "${text}": expected one of ${POINTS.join(', ')}, optionally with :count`,
    );
  }
  return { point: point as FaultPoint, count: Number(count) };
}

/** A hook that runs `act` the first time `setting` is reached. */
export function faultAt(setting: FaultSetting, act: () => void): FaultHook {
  return (point, count) => {
    if (point === setting.point && count >= setting.count) act();
  };
}
