// Tests of long timers (operator windows, approval expiry, retention) on Temporal's time-skipping
// test server (Java, installed by scripts/bootstrap.js): a run waiting 7 days ends in a second or
// two of wall time. Time only skips while the test awaits a result through `env.client` (or calls
// `env.sleep`); while it queries or signals, the server's clock stands still.
//
// The server has no visibility API (no ListWorkflowExecutions, no `conveyor list`): anything that
// reads search attributes back belongs on the dev server (test/helpers/stack.ts). It does check
// upserts against the registered attributes, though: an unknown one fails every workflow task
// ("BadSearchAttributes: search attribute ConveyorStatus is not defined") and the run hangs, so
// startTimeSkipping registers ours through the operator service, as the dev server gets them at start.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { BuildActivities, OrchestratorActivities } from '../../activities';
import { freePort, spawnService, waitFor } from '../../cli/local-stack/services';
import { buildQueue } from '../../common/queues';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import type { ConveyorConfig } from '../../config/conveyor';
import { testEnv } from './stack';

/** The wrapper script bootstrap links (`exec java -cp … io.temporal.testserver.TestServer "$@"`). */
export const TEST_SERVER_PATH = path.resolve(__dirname, '..', '..', '.tools', 'bin', 'temporal-test-server');

/**
 * Starts a time-skipping test server on a free port, with Conveyor's search attributes registered.
 * One per test file (beforeAll, `env.teardown()` in afterAll), used by one test at a time: skipping
 * time is global to the server, not to a workflow.
 */
export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  if (!fs.existsSync(TEST_SERVER_PATH))
    throw new Error(
      `the time-skipping test server is not installed (${TEST_SERVER_PATH} is missing): run ` +
        '`node scripts/bootstrap.js`, which needs java and mvn on PATH (Debian: apt-get install -y default-jdk-headless maven)',
    );
  installQuietRuntime();
  const env = await startServer();
  try {
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(
        Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [name, indexed(type)]),
      ),
    });
  } catch (err) {
    await env.teardown();
    throw err;
  }
  return env;
}

/**
 * The SDK's own start (`createTimeSkipping`) gives the server's JVM 5 s to listen, a constant of
 * its core: about 1.5 s on an idle machine, but CI has missed it on 2 cores busy with the band's
 * files and the lint beside them. So the server is started here, with a minute to listen, and the
 * SDK is handed its address as an existing time-skipping server. `teardown()` stops it.
 */
async function startServer(): Promise<TestWorkflowEnvironment> {
  const port = await freePort();
  const logFile = path.join(os.tmpdir(), `conveyor-time-skipping-${port}.log`);
  const server = spawnService('time-skipping test server', TEST_SERVER_PATH, [String(port)], { logFile });
  try {
    await waitFor(`the time-skipping test server to listen on port ${port}`, () => listening(port), {
      timeoutMs: 60000,
      intervalMs: 100,
      service: server,
    });
    // `create` is the SDK's one constructor of environments; its public wrappers either start
    // the server themselves or leave time skipping off.
    const env = await (
      TestWorkflowEnvironment as unknown as { create(o: object): Promise<TestWorkflowEnvironment> }
    ).create({
      server: { type: 'existing' },
      address: `127.0.0.1:${port}`,
      namespace: 'default',
      supportsTimeSkipping: true,
    });
    const teardown = env.teardown.bind(env);
    env.teardown = async () => {
      await teardown();
      await server.stop(5000);
      fs.rmSync(logFile, { force: true });
    };
    return env;
  } catch (err) {
    await server.stop(5000);
    throw err;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Test doubles: typed against the real factories, so they cannot drift from the real signatures. */
export interface TestActivities {
  /** Served beside the workflows on the config's orchestrator queue. */
  orchestrator?: Partial<OrchestratorActivities>;
  /** Served on `build-<distro>` for every distro of the config. */
  build?: Partial<BuildActivities>;
}

/**
 * The orchestrator worker (the pre-built workflow bundle of the jest global setup, and the given
 * orchestrator activities) and one builder worker per distro of `config`, all connected to `env`,
 * until `stop()`. A workflow calling an activity that is not given fails that activity with
 * "Activity function … is not registered".
 */
export async function startTimeSkippingWorkers(
  env: TestWorkflowEnvironment,
  config: ConveyorConfig,
  activities: TestActivities,
): Promise<{ stop(): Promise<void> }> {
  const namespace = env.namespace ?? 'default';
  const workers = [
    await Worker.create({
      connection: env.nativeConnection,
      namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: testEnv().bundle },
      activities: activities.orchestrator ?? {},
    }),
    ...(await Promise.all(
      Object.keys(config.distros).map((distro) =>
        Worker.create({
          connection: env.nativeConnection,
          namespace,
          taskQueue: buildQueue(distro),
          activities: activities.build ?? {},
        }),
      ),
    )),
  ];
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      workers.forEach((w) => w.shutdown());
      await Promise.all(running);
    },
  };
}

/** `Keyword` (the CLI's spelling, as in SEARCH_ATTRIBUTES) → the API's IndexedValueType. */
function indexed(type: string) {
  const t = encodeSearchAttributeIndexedValueType(type.toUpperCase() as 'KEYWORD');
  if (t === undefined) throw new Error(`unknown search attribute type ${type} in common/search-attributes.ts`);
  return t;
}

// The SDK's default runtime logs every worker start at INFO; tests want warnings only. The runtime is
// per process and can be installed once: test/helpers/stack.ts may have done it already.
function installQuietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.CONVEYOR_TEST_LOG_LEVEL as 'WARN') ?? 'WARN') });
  } catch {
    /* already installed */
  }
}
