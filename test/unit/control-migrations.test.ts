import { describe, expect, it } from 'vitest';
import { controlMigrations } from '../../migrations/index.js';
import { CONTROL_MIGRATION_NAMES } from '../../migrations/names.js';

describe('control-schema migrations', () => {
  it('the names a starting sidecar checks are exactly the bundled migrations, in order', async () => {
    const bundled = Object.keys(await controlMigrations.getMigrations());
    expect(bundled).toEqual([...CONTROL_MIGRATION_NAMES]);
    expect([...bundled].sort()).toEqual(bundled);
  });
});
