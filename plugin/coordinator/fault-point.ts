/**
 * Named points of a round where tests inject faults (DESIGN.md, "Fault tests"):
 * after `count` participants prepared, after the decision was recorded, after
 * `count` COMMIT PREPAREDs.
 */
export type FaultPoint = 'after-prepare' | 'after-decision' | 'after-commit';

/** Called at each point; a test's hook may crash the process there. */
export type FaultHook = (point: FaultPoint, count: number) => void;

/** What happens at the point: the process dies (SIGKILL), or lockstep's connections to every node are cut. */
export type FaultAction = 'kill' | 'cut';

/** A parsed fault setting: `point`, `point:count` or `point:count:action`. */
export interface FaultSetting {
  readonly point: FaultPoint;
  readonly count: number;
  readonly action: FaultAction;
}

const POINTS: readonly FaultPoint[] = ['after-prepare', 'after-decision', 'after-commit'];

/** Reads `after-prepare:1`, `after-decision`, `after-commit:2:cut`; throws on anything else. */
export function parseFaultSetting(text: string): FaultSetting {
  const [point, count = '1', action = 'kill', ...rest] = text.trim().split(':');
  if (
    !POINTS.includes(point as FaultPoint) ||
    !/^\d+$/.test(count) ||
    (action !== 'kill' && action !== 'cut') ||
    rest.length > 0
  ) {
    throw new Error(
      `invalid fault point "${text}": expected one of ${POINTS.join(', ')}, optionally with :count and :kill or :cut`,
    );
  }
  return { point: point as FaultPoint, count: Number(count), action };
}

/** A hook that runs `act` the first time `setting` is reached (once). */
export function faultAt(setting: FaultSetting, act: (action: FaultAction) => void): FaultHook {
  let fired = false;
  return (point, count) => {
    if (fired || point !== setting.point || count < setting.count) return;
    fired = true;
    act(setting.action);
  };
}
