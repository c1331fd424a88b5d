// One isolated local stack per `npm test`: a Temporal dev server and the local AWS endpoint (the
// same as `conveyor dev`'s: versitygw for S3, moto for EC2 and SSM, one port) on free ports with
// their state in a temp dir, plus one workflow bundle for every test worker and the prebuilt entry
// points every test starts processes from (scripts/prebuild.js, test/helpers/entry.ts). Tests never
// touch a running `npm run dev` stack. Addresses reach the tests through env vars (CONVEYOR_TEST_*).
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
    const [port, httpPort, metricsPort, uiPort, awsPort] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
    const signingKey = path.join(dir, 'signing-key.asc');
    // Inside the checkout (node_modules resolves from there), one directory per run; git-ignored.
    const prebuilt = path.join(ROOT, '.tools', 'prebuilt', path.basename(dir));
    const [temporal, aws, bundle] = await Promise.all([
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
      }),
      startLocalAws({ port: awsPort, s3DataDir: path.join(dir, 's3'), logDir: dir }),
      bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger }),
      generateSigningKey(signingKey, 'Conveyor tests <conveyor-tests@localhost>'),
      prebuild(prebuilt),
    ]);
    services.push(temporal, ...aws);
    const bundlePath = path.join(dir, 'workflow-bundle.js');
    fs.writeFileSync(bundlePath, bundle.code);
    process.env.CONVEYOR_TEST_DIR = dir;
    process.env.CONVEYOR_TEST_TEMPORAL = `127.0.0.1:${port}`;
    process.env.CONVEYOR_TEST_AWS = `http://127.0.0.1:${awsPort}`;
    process.env.CONVEYOR_TEST_BUNDLE = bundlePath;
    process.env.CONVEYOR_TEST_SIGNING_KEY = signingKey;
    process.env.CONVEYOR_TEST_PREBUILT = prebuilt;
  } catch (err) {
    await Promise.all(services.map((s) => s.stop()));
    throw err;
  }
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
