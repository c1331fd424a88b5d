// Isolated local stacks for one `npm test`: a Temporal dev server and the local AWS endpoint (the
// same as `conveyor dev`'s: versitygw for S3, moto for EC2 and SSM, one port) on free ports with
// their state in a temp dir, plus one workflow bundle for every test worker and the prebuilt entry
// points every test starts processes from (scripts/prebuild.js, test/helpers/entry.ts). Tests never
// touch a running `npm run dev` stack. Addresses reach the tests through env vars (CONVEYOR_TEST_*).
//
// One stack per band lane (CONVEYOR_TEST_BAND, test/setup/lanes-runner.ts): the stack-heavy files
// of several lanes (scripts/test.js: 3) run at the same time, and each lane's worker process talks to a server and an
// endpoint of its own (test/setup/lane-env.ts picks them by JEST_WORKER_ID). What one file sees
// server-wide (list and count queries, entity workflows of a shared repository name, EC2 instances
// by tag) is then only ever its own lane's, where files still run one after another. Stack 1's
// addresses are CONVEYOR_TEST_TEMPORAL and CONVEYOR_TEST_AWS; stack N's end in `_N`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { generateSigningKey } from '../../activities/repository';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import { startLocalAws, startTemporalServer } from '../../cli/local-stack/servers';
import { freePort, type Service } from '../../cli/local-stack/services';
import { workflowsPath } from '../../workers/create';
import { prebuild } from '../../scripts/prebuild';
import { ROOT } from '../../cli/local-stack/tools';
import { bandWorkers } from './lanes-runner';

declare global {
  var __conveyorTestServices: Service[] | undefined;
}

export default async function globalSetup(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-test-'));
  // Workspaces live under it, and bwrap resolves their bind mounts as the sandbox uid: passable
  // (not listable) by others, like any workspace root (activities/exec/sandbox.ts).
  fs.chmodSync(dir, 0o711);
  const services: Service[] = [];
  globalThis.__conveyorTestServices = services;
  // Killed without teardown (Ctrl-C on jest): still take the servers down.
  process.once('exit', () => services.forEach((s) => s.child.pid && tryKill(-s.child.pid)));
  try {
    const signingKey = path.join(dir, 'signing-key.asc');
    // Inside the checkout (node_modules resolves from there), one directory per run; git-ignored.
    const prebuilt = path.join(ROOT, '.tools', 'prebuilt', path.basename(dir));
    // One per band worker (CONVEYOR_TEST_BAND, which scripts/test.js sets).
    const lanes = bandWorkers();
    const [stacks, bundle] = await Promise.all([
      Promise.all(
        Array.from({ length: lanes }, (_, i) => startStack(i === 0 ? dir : path.join(dir, `stack-${i + 1}`), services)),
      ),
      bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger }),
      generateSigningKey(signingKey, 'Conveyor tests <conveyor-tests@localhost>'),
      prebuild(prebuilt),
    ]);
    const bundlePath = path.join(dir, 'workflow-bundle.js');
    fs.writeFileSync(bundlePath, bundle.code);
    process.env.CONVEYOR_TEST_DIR = dir;
    stacks.forEach((stack, i) => {
      const suffix = i === 0 ? '' : `_${i + 1}`;
      process.env[`CONVEYOR_TEST_TEMPORAL${suffix}`] = stack.temporal;
      process.env[`CONVEYOR_TEST_AWS${suffix}`] = stack.aws;
    });
    process.env.CONVEYOR_TEST_BUNDLE = bundlePath;
    process.env.CONVEYOR_TEST_SIGNING_KEY = signingKey;
    process.env.CONVEYOR_TEST_PREBUILT = prebuilt;
  } catch (err) {
    await Promise.all(services.map((s) => s.stop()));
    throw err;
  }
}

/**
 * startStackOnce, again on other free ports when it fails: stacks start side by side, and a port
 * one of them was given can be taken by another stack's server before it binds it (seen once with
 * three lanes: the AWS router's port, EADDRINUSE). Three attempts; the last failure is thrown.
 */
async function startStack(dir: string, services: Service[]): Promise<{ temporal: string; aws: string }> {
  for (let attempt = 1; ; attempt++) {
    const mine: Service[] = [];
    try {
      const stack = await startStackOnce(dir, mine);
      services.push(...mine);
      return stack;
    } catch (err) {
      await Promise.all(mine.map((s) => s.stop()));
      if (attempt === 3) throw err;
      process.stderr.write(`global setup: the stack in ${dir} did not start (${(err as Error).message}); again\n`);
    }
  }
}

/** One Temporal dev server and one local AWS endpoint, their state under `dir`. */
async function startStackOnce(dir: string, services: Service[]): Promise<{ temporal: string; aws: string }> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  const [port, httpPort, metricsPort, uiPort, awsPort] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
  // Each joins `services` as soon as it is up, so a failure of the other still stops it.
  await Promise.all([
    startTemporalServer({
      port,
      uiPort,
      httpPort,
      metricsPort,
      namespace: 'default',
      dbFile: path.join(dir, 'temporal.db'),
      searchAttributes: SEARCH_ATTRIBUTES,
      logFile: path.join(dir, 'temporal.log'),
      headless: true,
    }).then((t) => {
      services.push(t);
    }),
    startLocalAws({ port: awsPort, s3DataDir: path.join(dir, 's3'), logDir: dir }).then((a) => {
      services.push(...a);
    }),
  ]);
  return { temporal: `127.0.0.1:${port}`, aws: `http://127.0.0.1:${awsPort}` };
}

function tryKill(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

const noop = () => undefined;
const quietLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: (msg: string) => process.stderr.write(`workflow bundle: ${msg}\n`),
};
