// Which lane each test file runs in (test/setup/lanes-runner.ts): only unit, workflow and replay
// files share the pool; every other file, a new directory's included, stays in the band.
import fs from 'node:fs';
import path from 'node:path';
import { laneOf, poolWorkers } from '../setup/lanes-runner';

const TEST = path.resolve(__dirname, '..');

describe('lanes runner', () => {
  it('puts unit, workflow and replay files in the pool and every other test file in the band', () => {
    const lanes = new Map<string, Set<string>>();
    for (const dir of fs.readdirSync(TEST)) {
      const full = path.join(TEST, dir);
      if (!fs.statSync(full).isDirectory()) continue;
      for (const f of fs.readdirSync(full).filter((n) => n.endsWith('.test.ts'))) {
        const set = lanes.get(dir) ?? new Set<string>();
        set.add(laneOf(path.join(full, f)));
        lanes.set(dir, set);
      }
    }
    expect(Object.fromEntries([...lanes].map(([dir, set]) => [dir, [...set]]))).toEqual({
      e2e: ['band'],
      integration: ['band'],
      reliability: ['band'],
      replay: ['pool'],
      unit: ['pool'],
      workflows: ['pool'],
    });
    expect(laneOf(path.join(TEST, 'somewhere-new', 'x.test.ts'))).toBe('band');
    expect(laneOf(path.join(TEST, 'unit-like', 'x.test.ts'))).toBe('band');
  });

  it('takes the pool size from CONVEYOR_TEST_POOL and refuses a bad one', () => {
    expect(poolWorkers({})).toBe(1);
    expect(poolWorkers({ CONVEYOR_TEST_POOL: '2' })).toBe(2);
    expect(() => poolWorkers({ CONVEYOR_TEST_POOL: 'two' })).toThrow('CONVEYOR_TEST_POOL: not a positive integer: two');
    expect(() => poolWorkers({ CONVEYOR_TEST_POOL: '0' })).toThrow('not a positive integer');
  });
});
