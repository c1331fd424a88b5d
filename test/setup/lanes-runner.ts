// Jest runner with two lanes that run at the same time, each in worker processes of its own:
//   band — the stack-heavy files (integration, e2e, reliability): `CONVEYOR_TEST_BAND` workers
//          (scripts/test.js: 3), each with a Temporal dev server and an AWS endpoint of its own
//          (global-setup.ts starts one stack per band worker, lane-env.ts points each worker at
//          its own). Files on one stack run one after another, as `jest --runInBand` ran
//          everything: some read what is visible server-wide (list and count queries, entity
//          workflows of a shared repository name), so they never overlap on one server. What the
//          stacks share is this machine: its CPU, the hosts' base roots (built once, renamed
//          into place) and process listings, which the tests read by markers of their own;
//   pool — unit, workflow and replay files: `CONVEYOR_TEST_POOL` workers (default 1: the band is the
//          long pole, and one pool worker beside it already ends long before it). They use no
//          name a band file uses: their own time-skipping servers, or task queues, buckets and
//          repositories with a random suffix (test/helpers/stack.ts), or nothing of the stack.
// A file joins the band unless it is under one of POOL_DIRS, so a new stack-heavy directory stays
// safe by default. `jest --runInBand`, or a single test file, runs everything in band in jest's own
// process, as before (debuggers, --detectOpenHandles). jest.config.js sets maxWorkers above 1:
// jest runs everything in band by itself otherwise.
import path from 'node:path';
import TestRunner, { EmittingTestRunner, type Test, type TestEvents, type TestRunnerOptions } from 'jest-runner';
import type { TestWatcher } from 'jest-watcher';

const POOL_DIRS = ['unit', 'workflows', 'replay'].map((d) => path.join(__dirname, '..', d) + path.sep);
const EVENTS: (keyof TestEvents)[] = [
  'test-file-start',
  'test-file-success',
  'test-file-failure',
  'test-case-start',
  'test-case-result',
];

type Listener = (data: unknown) => void | Promise<void>;

/** A positive worker count from `name`, else 1. */
function workersFrom(env: NodeJS.ProcessEnv, name: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: not a positive integer: ${raw}`);
  return n;
}

/** Workers of the pool lane: CONVEYOR_TEST_POOL, else 1. */
export function poolWorkers(env = process.env): number {
  return workersFrom(env, 'CONVEYOR_TEST_POOL');
}

/** Workers of the band lane, each with a stack of its own (global-setup.ts): CONVEYOR_TEST_BAND,
 * else 1. */
export function bandWorkers(env = process.env): number {
  return workersFrom(env, 'CONVEYOR_TEST_BAND');
}

/** The lane of a test file (its absolute path). */
export function laneOf(testPath: string): 'pool' | 'band' {
  return POOL_DIRS.some((dir) => testPath.startsWith(dir)) ? 'pool' : 'band';
}

export default class LanesRunner extends EmittingTestRunner {
  readonly #listeners = new Map<string, Set<Listener>>();

  on<Name extends keyof TestEvents>(
    eventName: Name,
    listener: (eventData: TestEvents[Name]) => void | Promise<void>,
  ): () => void {
    const set = this.#listeners.get(eventName) ?? new Set<Listener>();
    this.#listeners.set(eventName, set);
    set.add(listener as Listener);
    return () => set.delete(listener as Listener);
  }

  /** A stock jest runner for one lane, its events passed on as ours. */
  #lane(maxWorkers: number): TestRunner {
    const runner = new TestRunner({ ...this._globalConfig, maxWorkers }, this._context);
    for (const name of EVENTS) {
      runner.on(name, async (data) => {
        for (const l of this.#listeners.get(name) ?? []) await l(data);
      });
    }
    return runner;
  }

  async runTests(tests: Test[], watcher: TestWatcher, options: TestRunnerOptions): Promise<void> {
    if (options.serial) return this.#lane(1).runTests(tests, watcher, options);
    const band = tests.filter((t) => laneOf(t.path) === 'band');
    const pool = tests.filter((t) => laneOf(t.path) === 'pool');
    await Promise.all([
      band.length > 0 ? this.#lane(bandWorkers()).runTests(band, watcher, { serial: false }) : undefined,
      pool.length > 0 ? this.#lane(poolWorkers()).runTests(pool, watcher, { serial: false }) : undefined,
    ]);
  }
}
