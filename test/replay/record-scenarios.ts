// Records the histories of the paths the demo's runs never take, from real runs on an isolated
// test stack (the jest global setup's: Temporal dev server, the local AWS endpoint, local Debian
// hosts), into test/replay/histories/<scenario>/:
//   superseded             an ancestor delivered after its descendant deployed: deploy skipped.
//                          Since the patch older-commit-superseded-at-build, the same scenario ends
//                          at the build number; that recording is kept as superseded-at-build
//   rerun-deploy-forced    `conveyor rerun <that run> deploy/<distro> --force` (a standalone stage)
//   verify-failed          e2e fails on the staging hosts; the operator window passes, the run fails
//   approval-rejected      rejected at the approval gate (the reject Update)
//   approval-expired       nobody decides before approvalTimeoutHours
//   promote-skipped        approved after a newer build of the branch reached production
//   entity-continue-as-new branch-state continuing as new (both runs: the closed one and the current)
//   sign-at-package        a main run with a deb, an rpm and docs through to production; its rpm
//                          stage signs at package time (patch sign-at-package)
//   e2e-examples           e2e is `{ examples: [README.md] }`: the sample README's marked examples run
//                          on the staging host and match (patch e2e-examples)
//   e2e-examples-mismatch  the same with one example changed so it differs: verify fails with its
//                          file:line, the operator window passes, the run fails
//   deploy-prepare-ahead   a main run deployed to two hosts in batches of one: each host prepared
//                          (prepareHost), the second while the first upgrades (patch
//                          deploy-prepare-ahead)
//   side-by-side           the second of two main runs of a repository with docs and two hosts:
//                          its earlier build checked in one activity (patch earlier-builds-one-check),
//                          the APT repository and the docs published side by side (patch
//                          publish-repositories-side-by-side), both hosts' versions read at once
//                          before verify (patch verify-version-checks-side-by-side)
//   superseded-one-check   the superseded scenario on the current code: the descendant found by the
//                          one check, the run ends at its build number
// Usage: tsx test/replay/record-scenarios.ts [scenario…]   (default: all). Re-record only when the
// workflow code that produced a scenario's history is what you mean to pin; replay.test.ts then
// replays every file against the current code.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createControlActivities } from '../../activities/control';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { commitSample, type PushedCommit } from '../../cli/demo/sample-repo';
import { pushPayload } from '../../cli/webhook-client';
import { branchStateId } from '../../common/ids';
import type { PipelineResult } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { approveUpdate, rejectUpdate } from '../../workflows/messages';
import globalSetup from '../setup/global-setup';
import globalTeardown from '../setup/global-teardown';
import { conveyor } from '../helpers/cli';
import { makeLocalHost, registerHosts } from '../helpers/hosts';
import {
  awsFor,
  clientFor,
  DEB_AND_RPM,
  startWorkers,
  tempDir,
  testConfig,
  uid,
  waitForStatus,
} from '../helpers/stack';

const EventType = temporal.api.enums.v1.EventType;
const OUT = path.join(__dirname, 'histories');

/** Writes one history file per workflow: the root and, recursively, the children its history started. */
async function record(client: Client, scenario: string, rootId: string, runId?: string, suffix = ''): Promise<void> {
  const dir = path.join(OUT, scenario);
  fs.mkdirSync(dir, { recursive: true });
  const history = await client.workflow.getHandle(rootId, runId).fetchHistory();
  // Binary protobuf (base64), as test/replay/record.ts writes them.
  const bytes = temporal.api.history.v1.History.encode(history).finish();
  const file = path.join(dir, `${rootId.replace(/[^A-Za-z0-9._-]+/g, '_')}${suffix}.json`);
  fs.writeFileSync(file, JSON.stringify({ workflowId: rootId, history: Buffer.from(bytes).toString('base64') }) + '\n');
  process.stdout.write(`${path.relative(process.cwd(), file)}\n`);
  for (const e of history.events ?? []) {
    if (e.eventType !== EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) continue;
    const child = e.childWorkflowExecutionStartedEventAttributes!.workflowExecution!;
    await record(client, scenario, child.workflowId!, child.runId!);
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const want = (s: string) => only.length === 0 || only.includes(s);
  await globalSetup();
  try {
    const id = uid();
    const dir = tempDir('record');
    const bare = (name: string) => path.join(dir, `${name}.git`);
    const role = (name: string) => `${name}-${id}`;
    const staged = (name: string, e2e?: string | { examples: string[] }) => ({
      name: `acme/${name}`,
      cloneUrl: bare(name),
      branches: [{ match: 'main', channel: name }],
      steps: { unit: 'make test', package: 'make package', smoke: 'widget --version', ...(e2e ? { e2e } : {}) },
      more: {
        packages: ['widget'],
        staging: { tags: { Environment: 'staging', Role: role(name) }, batchSize: 1 },
        operatorWindowHours: 0.002,
      },
    });
    const gated = (name: string, hours = 72) => ({
      name: `acme/${name}`,
      cloneUrl: bare(name),
      branches: [{ match: 'main', channel: name, approval: true }],
      steps: { unit: 'make test', package: 'make package' },
      more: { packages: ['widget'], approvalTimeoutHours: hours },
    });
    const config: ConveyorConfig = testConfig(
      [
        staged('superseded'),
        staged('verify', 'echo "e2e: the widget answers 42, expected 41"; exit 1'),
        gated('gate'),
        gated('expiring', 0.002),
        staged('examples', { examples: ['README.md'] }),
        staged('mismatch', { examples: ['README.md'] }),
        staged('ahead'),
        { ...staged('sbs'), steps: { ...staged('sbs').steps, docs: 'make docs' } },
        staged('superseded2'),
      ],
      { fleet: { hostsDir: path.join(dir, 'hosts') } },
    );
    const [distro] = Object.keys(config.distros);
    const aws = await awsFor(config);
    for (const name of ['superseded', 'verify', 'examples', 'mismatch', 'superseded2']) {
      const root = await makeLocalHost(path.join(dir, 'hosts'), `${name}-1`, 'deb');
      await registerHosts(aws.ec2, [
        { name: `${name}-1`, distro, executor: 'local', tags: { Environment: 'staging', Role: role(name) }, root },
      ]);
    }
    // Two hosts for the deploy prepared ahead (the second batch is prepared during the first), and
    // for the side-by-side scenario.
    for (const name of ['ahead', 'sbs']) {
      for (const n of [1, 2]) {
        const root = await makeLocalHost(path.join(dir, 'hosts'), `${name}-${n}`, 'deb');
        await registerHosts(aws.ec2, [
          { name: `${name}-${n}`, distro, executor: 'local', tags: { Environment: 'staging', Role: role(name) }, root },
        ]);
      }
    }
    const client = await clientFor(config);
    const workers = await startWorkers(config);
    const commit = (name: string, message: string) =>
      commitSample(bare(name), path.join(dir, `${name}-work`), { message });
    const deliver = async (name: string, c: PushedCommit) => {
      const d = decidePush(
        config,
        pushPayload({ repository: `acme/${name}`, branch: 'main', sha: c.sha, before: c.before }),
      );
      if (d.action !== 'start') throw new Error(d.reason);
      return (await startPipeline(client, d.input, config.temporal.taskQueue)).workflowId;
    };
    const result = async (wf: string) => (await client.workflow.getHandle(wf).result()) as PipelineResult;
    const expectStatus = (wf: string, r: PipelineResult, status: string) => {
      if (r.status !== status) throw new Error(`${wf} ended ${r.status}, expected ${status}`);
    };
    /** Records a run that ends with `status`. */
    const recordEnded = async (scenario: string, wf: string, status: string) => {
      expectStatus(wf, await result(wf), status);
      await record(client, scenario, wf);
    };
    /** Records a run that fails, once the operator window (7 s) after its failed stage passes. */
    const recordFailed = async (scenario: string, wf: string) => {
      await result(wf).catch(() => undefined);
      const { status } = await client.workflow.getHandle(wf).describe();
      if (status.name !== 'FAILED') throw new Error(`${wf} is ${status.name}, expected FAILED`);
      await record(client, scenario, wf);
    };
    try {
      const scenarios: Promise<void>[] = [];
      if (want('superseded') || want('rerun-deploy-forced')) {
        scenarios.push(
          (async () => {
            const older = await commit('superseded', 'older');
            const newer = await commit('superseded', 'newer');
            expectStatus('newer', await result(await deliver('superseded', newer)), 'succeeded');
            const wf = await deliver('superseded', older);
            expectStatus(wf, await result(wf), 'superseded');
            if (want('superseded')) await record(client, 'superseded', wf);
            if (want('rerun-deploy-forced')) {
              const rerun = await conveyor(config.file, ['rerun', wf, `deploy/${distro}`, '--force'], {
                timeoutMs: 180000,
              });
              if (rerun.code !== 0) throw new Error(`rerun: ${rerun.stderr}`);
              await record(client, 'rerun-deploy-forced', rerun.stdout.trim());
            }
          })(),
        );
      }
      if (want('verify-failed')) {
        scenarios.push(
          (async () => {
            await recordFailed('verify-failed', await deliver('verify', await commit('verify', 'e2e will fail')));
          })(),
        );
      }
      if (want('e2e-examples')) {
        scenarios.push(
          (async () => {
            const c = await commit('examples', 'documented examples pass');
            await recordEnded('e2e-examples', await deliver('examples', c), 'succeeded');
          })(),
        );
      }
      if (want('e2e-examples-mismatch')) {
        scenarios.push(
          (async () => {
            const c = await commitSample(bare('mismatch'), path.join(dir, 'mismatch-work'), {
              message: 'a documented example differs',
              mutate: (w) => {
                const readme = path.join(w, 'README.md');
                fs.writeFileSync(readme, fs.readFileSync(readme, 'utf8').replace(/^5$/m, '6'));
              },
            });
            await recordFailed('e2e-examples-mismatch', await deliver('mismatch', c));
          })(),
        );
      }
      if (want('approval-rejected') || want('promote-skipped')) {
        scenarios.push(
          (async () => {
            const first = await deliver('gate', await commit('gate', 'first'));
            await waitForStatus(client, first, 'awaiting-approval', 120000);
            const second = await deliver('gate', await commit('gate', 'second'));
            await waitForStatus(client, second, 'awaiting-approval', 120000);
            await client.workflow.getHandle(second).executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
            expectStatus(second, await result(second), 'succeeded');
            await client.workflow.getHandle(first).executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
            expectStatus(first, await result(first), 'superseded');
            if (want('promote-skipped')) await record(client, 'promote-skipped', first);
            const third = await deliver('gate', await commit('gate', 'third'));
            await waitForStatus(client, third, 'awaiting-approval', 120000);
            await client.workflow
              .getHandle(third)
              .executeUpdate(rejectUpdate, { args: [{ by: 'ops', reason: 'not this one' }] });
            expectStatus(third, await result(third), 'rejected');
            if (want('approval-rejected')) await record(client, 'approval-rejected', third);
          })(),
        );
      }
      if (want('approval-expired')) {
        scenarios.push(
          (async () => {
            await recordEnded(
              'approval-expired',
              await deliver('expiring', await commit('expiring', 'nobody decides')),
              'expired',
            );
          })(),
        );
      }
      if (want('entity-continue-as-new')) {
        scenarios.push(
          (async () => {
            const repository = `acme/entity-${id}`;
            const wf = branchStateId(repository, 'main');
            const first = await client.workflow.start('branchState', {
              workflowId: wf,
              taskQueue: config.temporal.taskQueue,
              args: [{ repository, branch: 'main', lastBuild: 0, assigned: [], maxHistoryEvents: 40 }],
            });
            const control = createControlActivities({ client, taskQueue: config.temporal.taskQueue });
            for (let i = 1; i <= 12; i++) {
              const pipelineId = `pipeline/${repository}/main/${String(i).padStart(40, '0')}`;
              await control.allocateBuild({ repository, branch: 'main', pipelineId });
              if (i % 4 === 0)
                await control.recordGreen({
                  repository,
                  branch: 'main',
                  build: i,
                  sha: 'f'.repeat(40),
                  version: `1.0.0-${i}`,
                  at: new Date().toISOString(),
                });
            }
            const firstRun = await client.workflow.getHandle(wf, first.firstExecutionRunId).describe();
            if (firstRun.status.name !== 'CONTINUED_AS_NEW')
              throw new Error(`${wf} first run is ${firstRun.status.name}, expected CONTINUED_AS_NEW`);
            await record(client, 'entity-continue-as-new', wf, first.firstExecutionRunId, '_run1');
            await record(client, 'entity-continue-as-new', wf, undefined, '_current');
          })(),
        );
      }
      if (want('deploy-prepare-ahead')) {
        scenarios.push(
          (async () => {
            const c = await commit('ahead', 'deployed to two hosts, the second prepared ahead');
            await recordEnded('deploy-prepare-ahead', await deliver('ahead', c), 'succeeded');
          })(),
        );
      }
      if (want('side-by-side')) {
        scenarios.push(
          (async () => {
            const first = await deliver('sbs', await commit('sbs', 'first'));
            expectStatus(first, await result(first), 'succeeded');
            const second = await commit('sbs', 'second: its earlier build is checked in one activity');
            await recordEnded('side-by-side', await deliver('sbs', second), 'succeeded');
          })(),
        );
      }
      if (want('superseded-one-check')) {
        scenarios.push(
          (async () => {
            const older = await commit('superseded2', 'older');
            const newer = await commit('superseded2', 'newer');
            expectStatus('newer', await result(await deliver('superseded2', newer)), 'succeeded');
            await recordEnded('superseded-one-check', await deliver('superseded2', older), 'superseded');
          })(),
        );
      }
      if (want('sign-at-package')) {
        scenarios.push(
          (async () => {
            // Its own config: an rpm distro beside the deb one, which the other scenarios' hosts lack.
            const signedConfig = testConfig(
              [
                {
                  name: 'acme/signed',
                  cloneUrl: bare('signed'),
                  branches: [{ match: 'main', channel: 'signed' }],
                  steps: { unit: 'make test', package: 'make package', docs: 'make docs' },
                  more: { packages: ['widget'] },
                },
              ],
              {},
              DEB_AND_RPM,
            );
            await awsFor(signedConfig);
            const signedWorkers = await startWorkers(signedConfig);
            try {
              const c = await commit('signed', 'signed once');
              const d = decidePush(
                signedConfig,
                pushPayload({ repository: 'acme/signed', branch: 'main', sha: c.sha, before: c.before }),
              );
              if (d.action !== 'start') throw new Error(d.reason);
              const wf = (await startPipeline(client, d.input, signedConfig.temporal.taskQueue)).workflowId;
              expectStatus(wf, await result(wf), 'succeeded');
              await record(client, 'sign-at-package', wf);
            } finally {
              await signedWorkers.stop();
            }
          })(),
        );
      }
      const settled = await Promise.allSettled(scenarios);
      const failed = settled.filter((s) => s.status === 'rejected');
      if (failed.length > 0) throw new Error(failed.map((f) => String(f.reason)).join('\n'));
    } finally {
      await workers.stop();
      await client.connection.close();
    }
  } finally {
    await globalTeardown();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`record-scenarios: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
