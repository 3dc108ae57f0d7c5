/**
 * Named points where tests inject faults (DESIGN.md, "Fault tests"): in a
 * round, after `count` participants prepared (yes votes that landed while
 * the round was still voting: a late yes of an aborted round is being rolled
 * back), after the decision was recorded, after `count` COMMIT PREPAREDs;
 * and `slot-read`, each time the sidecar reads the slot's position to check
 * a resume point; `after-publish`, once JetStream acknowledged `count`
 * packets, before the slot is confirmed; `mid-change`, once it acknowledged
 * `count` fragments of changes (not the last of one): the bus ends inside a
 * change; `barrier`, once a migration's barrier session on the primary is
 * connected, before its statements.
 */
export type FaultPoint =
  | 'after-prepare'
  | 'after-decision'
  | 'after-commit'
  | 'slot-read'
  | 'after-publish'
  | 'mid-change'
  | 'barrier';

/** Called at each point; a test's hook may crash the process there. */
export type FaultHook = (point: FaultPoint, count: number) => void;

/**
 * What happens at the point: the process dies (SIGKILL), lockstep's
 * connections to every node are cut, (`stop`) the process stops itself
 * (SIGSTOP) until continued, so a test can freeze a node right there, or
 * (`fail`) the step itself fails, for each of the first `count` times it is
 * reached.
 */
export type FaultAction = 'kill' | 'cut' | 'stop' | 'fail';

/** A parsed fault setting: `point`, `point:count` or `point:count:action`. */
export interface FaultSetting {
  readonly point: FaultPoint;
  readonly count: number;
  readonly action: FaultAction;
}

const POINTS: readonly FaultPoint[] = [
  'after-prepare',
  'after-decision',
  'after-commit',
  'slot-read',
  'after-publish',
  'mid-change',
  'barrier',
];
const ACTIONS: readonly FaultAction[] = ['kill', 'cut', 'stop', 'fail'];

/** Reads `after-prepare:1`, `after-decision`, `after-commit:2:cut`, `barrier:1:stop`; throws on anything else. */
export function parseFaultSetting(text: string): FaultSetting {
  const [point, count = '1', action = 'kill', ...rest] = text.trim().split(':');
  if (
    !POINTS.includes(point as FaultPoint) ||
    !/^\d+$/.test(count) ||
    !ACTIONS.includes(action as FaultAction) ||
    // A round's points run inside its promise chains: failing there would break the round, not a step.
    (action === 'fail') !== (point === 'slot-read') ||
    rest.length > 0
  ) {
    throw new Error(
      `invalid fault point "${text}": expected one of ${POINTS.join(', ')}, optionally with :count and :kill, :cut, :stop or :fail`,
    );
  }
  return { point: point as FaultPoint, count: Number(count), action: action as FaultAction };
}

/**
 * A hook that runs `act` the first time `setting` is reached (once); with
 * `fail`, each of the first `count` times instead (the point then throws).
 */
export function faultAt(setting: FaultSetting, act: (action: FaultAction) => void): FaultHook {
  let fired = false;
  return (point, count) => {
    if (point !== setting.point) return;
    if (setting.action === 'fail') {
      if (count <= setting.count) act('fail');
      return;
    }
    if (fired || count < setting.count) return;
    fired = true;
    act(setting.action);
  };
}
