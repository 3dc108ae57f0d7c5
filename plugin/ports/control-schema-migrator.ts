/** Creates or upgrades lockstep's control schema on every node given, at once. */
export type ControlSchemaMigrator = (
  nodes: ReadonlyArray<{ readonly name: string; readonly url: string }>,
) => Promise<void>;
