// Every recorded history under test/replay/histories (real runs: success, failure + retry + abort,
// approval and promotion, a rolled-back deploy, a deploy aborted and one terminated mid-batch; and, from test/replay/record-scenarios.ts, a
// run whose rpm is signed at package time, a superseded deploy, a run superseded at its build number, a forced rerun, a failed verify, approval rejected and expired, a promote
// skipped for a newer build, branch-state across continue-as-new, documented examples passing and
// failing (patch e2e-examples), a deploy to two hosts prepared ahead (patch deploy-prepare-ahead))
// replays against the current
// workflow code. A change that would break a running history must use patched(): an unpatched
// incompatible change is caught, and so is a removed patched() guard (the promote stage's, the
// package stage's sign-at-package). Record
// new histories with test/replay/record.ts or record-scenarios.ts.
// The replays run in a child process (test/replay/run-replay.ts, prebuilt), as `conveyor replay`
// would; the current workflow code is the test stack's bundle, only the tampered fixtures are
// bundled here.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { entry } from '../helpers/entry';
import { testEnv } from '../helpers/stack';
import { patchesIn } from '../helpers/doubles';

const ROOT = path.resolve(__dirname, '..', '..');
const DIR = path.join(__dirname, 'histories');

interface Replayed {
  workflowId: string;
  file: string;
  error?: string;
  determinism?: boolean;
}

const EventType = temporal.api.enums.v1.EventType;

function historyOf(file: string): temporal.api.history.v1.IHistoryEvent[] {
  const { history } = JSON.parse(fs.readFileSync(file, 'utf8')) as { history: string };
  return temporal.api.history.v1.History.decode(Buffer.from(history, 'base64')).events ?? [];
}

/** How a recorded workflow ended: its result (completed), failure message, or the close event. */
function outcomeOf(file: string): { closed: string; result?: Record<string, unknown>; failure?: string } {
  const last = historyOf(file).at(-1)!;
  const closed = EventType[last.eventType!].replace('EVENT_TYPE_WORKFLOW_EXECUTION_', '');
  const payload = last.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0];
  return {
    closed,
    ...(payload ? { result: defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload) } : {}),
    ...(last.workflowExecutionFailedEventAttributes
      ? { failure: last.workflowExecutionFailedEventAttributes.failure?.message ?? '' }
      : {}),
  };
}

const files = () =>
  fs.readdirSync(DIR).flatMap((run) => fs.readdirSync(path.join(DIR, run)).map((f) => path.join(DIR, run, f)));

async function replay(args: string[]): Promise<Replayed[]> {
  const runner = entry('run-replay', args);
  const { stdout } = await promisify(execFile)(runner.command, runner.args, {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{')) // the SDK's core may log to stdout as well
    .map((l) => JSON.parse(l) as Replayed);
}

describe('replay of recorded histories', () => {
  it('replays every recorded history against the current workflow code', async () => {
    const all = files();
    expect(all.length).toBeGreaterThanOrEqual(20);
    const results = await replay(['--bundle', testEnv().bundle, ...all]);
    expect(results).toHaveLength(all.length);
    expect(results.filter((r) => r.error)).toEqual([]);
  });

  it('catches an unpatched incompatible change to the pipeline', async () => {
    const pipelines = files().filter((f) => /^pipeline_[^/]*_[0-9a-f]{40}\.json$/.test(path.basename(f)));
    expect(pipelines.length).toBeGreaterThanOrEqual(4);
    const results = await replay([
      '--workflows',
      path.join(__dirname, 'fixtures', 'incompatible-workflows.ts'),
      ...pipelines,
    ]);
    for (const r of results) expect(r).toMatchObject({ determinism: true });
  });

  it('covers superseded, rejected, expired, promote skipped, verify failed, rerun and continue-as-new', () => {
    const root = (scenario: string, pattern: RegExp) => {
      const found = fs.readdirSync(path.join(DIR, scenario)).filter((f) => pattern.test(f));
      expect({ scenario, found: found.length }).toEqual({ scenario, found: 1 });
      return outcomeOf(path.join(DIR, scenario, found[0]));
    };
    const pipeline = /^pipeline_[^/]*_[0-9a-f]{40}\.json$/;
    const stateOf = (r: Record<string, unknown> | undefined, stage: string) =>
      (r?.stages as { name: string; state: string }[] | undefined)?.find((s) => s.name === stage)?.state;
    const superseded = root('superseded', pipeline);
    expect(superseded.result).toMatchObject({ status: 'superseded' });
    expect(stateOf(superseded.result, 'deploy')).toBe('skipped');
    const atBuild = root('superseded-at-build', pipeline);
    expect(atBuild.result).toMatchObject({ status: 'superseded' });
    expect(stateOf(atBuild.result, 'package')).toBe('skipped');
    const skipped = root('promote-skipped', pipeline);
    expect(skipped.result).toMatchObject({ status: 'superseded' });
    expect(stateOf(skipped.result, 'promote')).toBe('skipped');
    expect(root('approval-rejected', pipeline).result).toMatchObject({ status: 'rejected' });
    expect(root('approval-expired', pipeline).result).toMatchObject({ status: 'expired' });
    expect(root('verify-failed', pipeline)).toMatchObject({
      closed: 'FAILED',
      failure: expect.stringMatching(/^stage verify failed: step e2e exited with code 1/),
    });
    expect(root('rerun-deploy-forced', /_rerun-\d+\.json$/)).toMatchObject({
      closed: 'COMPLETED',
      result: { status: 'deployed' },
    });
    expect(root('entity-continue-as-new', /_run1\.json$/).closed).toBe('CONTINUED_AS_NEW');
    expect(root('entity-continue-as-new', /_current\.json$/).closed).not.toBe('CONTINUED_AS_NEW');
  });

  it('records documented examples (e2e-examples): read on a builder, run on the host, a mismatch fails verify', () => {
    const dirOf = (scenario: string) => path.join(DIR, scenario);
    const find = (scenario: string, pattern: RegExp) =>
      path.join(
        dirOf(scenario),
        fs.readdirSync(dirOf(scenario)).find((f) => pattern.test(f))!,
      );
    const scheduled = (f: string) =>
      historyOf(f).flatMap((e) => {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        return name ? [name] : [];
      });
    const passing = find('e2e-examples', /_verify\.json$/);
    expect(patchesIn(historyOf(passing))).toContain('e2e-examples');
    expect(scheduled(passing)).toEqual(['hostVersion', 'runOnHost', 'collectExamples', 'runExamples']);
    expect(outcomeOf(passing).result).toMatchObject({
      examples: { files: ['README.md'], examples: 2, hosts: [{ passed: 2 }] },
    });
    expect(outcomeOf(find('e2e-examples', /_[0-9a-f]{40}\.json$/)).result).toMatchObject({ status: 'succeeded' });
    const failing = find('e2e-examples-mismatch', /_verify\.json$/);
    expect(scheduled(failing)).toEqual(['hostVersion', 'runOnHost', 'collectExamples', 'runExamples']);
    expect(outcomeOf(failing)).toMatchObject({
      closed: 'FAILED',
      failure: expect.stringMatching(/^documented examples: 1 mismatch\(es\) at README\.md:\d+ on /),
    });
    // The run failed once its operator window passed; its failure carries the diff as the stage's tail.
    const root = historyOf(find('e2e-examples-mismatch', /_[0-9a-f]{40}\.json$/)).at(-1)!;
    const failure = root.workflowExecutionFailedEventAttributes!.failure!;
    expect(failure.message).toMatch(/^stage verify failed: documented examples: 1 mismatch/);
    const details = defaultPayloadConverter.fromPayload<{ tail: string }>(
      failure.applicationFailureInfo!.details!.payloads![0],
    );
    expect(details.tail).toMatch(/^README\.md:\d+ on mismatch-1: \$ widget add 2 3\n- 6\n\+ 5$/);
  });

  it('records a deploy prepared ahead (deploy-prepare-ahead); the deploys recorded before it read versions', () => {
    const scheduled = (f: string) =>
      historyOf(f).flatMap((e) => {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        return name ? [name] : [];
      });
    const dir = path.join(DIR, 'deploy-prepare-ahead');
    const found = fs.readdirSync(dir);
    const pipeline = found.find((f) => /^pipeline_[^/]*_[0-9a-f]{40}\.json$/.test(f))!;
    expect(outcomeOf(path.join(dir, pipeline)).result).toMatchObject({ status: 'succeeded' });
    const deploy = path.join(
      dir,
      found.find((f) => /_deploy_[^/]*\.json$/.test(f))!,
    );
    expect(patchesIn(historyOf(deploy))).toContain('deploy-prepare-ahead');
    // Two hosts in batches of one: the second is prepared in the same task as the first's upgrade.
    expect(scheduled(deploy)).toEqual([
      'requestLock',
      'discoverHosts',
      'prepareHost',
      'prepareHost',
      'upgradeHost',
      'runOnHost',
      'upgradeHost',
      'runOnHost',
    ]);
    expect(outcomeOf(deploy).result).toMatchObject({
      status: 'deployed',
      hosts: [{ outcome: 'upgraded' }, { outcome: 'upgraded' }],
    });
    // The deploys recorded before the patch, rolled back ones included, replay on the old path (the
    // first test): no marker, one hostVersion per host and package.
    const older = files().filter(
      (f) => /_deploy_[^/]*\.json$/.test(f) && !patchesIn(historyOf(f)).includes('deploy-prepare-ahead'),
    );
    expect(older.length).toBeGreaterThanOrEqual(10);
    const reading = older.filter((f) => scheduled(f).includes('hostVersion'));
    expect(reading.length).toBeGreaterThanOrEqual(10);
    for (const f of older) expect(scheduled(f)).not.toContain('prepareHost');
  });

  it('records the side-by-side paths: one check of earlier builds, publishes and version reads at once', () => {
    const scheduled = (f: string) =>
      historyOf(f).flatMap((e) => {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        return name ? [name] : [];
      });
    const inDir = (scenario: string, pattern: RegExp) => {
      const dir = path.join(DIR, scenario);
      return path.join(
        dir,
        fs.readdirSync(dir).find((f) => pattern.test(f))!,
      );
    };
    const pipelineOf = (scenario: string) => inDir(scenario, /^pipeline_[^/]*_[0-9a-f]{40}\.json$/);
    // A second run of its branch: its earlier build asked about in one activity, not a descendant.
    const run = pipelineOf('side-by-side');
    expect(outcomeOf(run).result).toMatchObject({ status: 'succeeded' });
    expect(patchesIn(historyOf(run))).toContain('earlier-builds-one-check');
    expect(scheduled(run).filter((t) => t === 'descendantRelations' || t === 'commitRelation')).toEqual([
      'descendantRelations',
    ]);
    // The APT repository and the docs, side by side, in staging and in production.
    for (const stage of [/_publish\.json$/, /_promote\.json$/]) {
      const f = inDir('side-by-side', stage);
      expect(patchesIn(historyOf(f))).toContain('publish-repositories-side-by-side');
      expect(scheduled(f)).toEqual(expect.arrayContaining(['publishPackages', 'publishDocs']));
    }
    // Both hosts' versions read at once before the smoke step.
    const verify = inDir('side-by-side', /_verify\.json$/);
    expect(patchesIn(historyOf(verify))).toContain('verify-version-checks-side-by-side');
    expect(scheduled(verify).slice(0, 2)).toEqual(['hostVersion', 'hostVersion']);
    // The superseded scenario on this path: the descendant found by the one check.
    const superseded = pipelineOf('superseded-one-check');
    expect(outcomeOf(superseded).result).toMatchObject({ status: 'superseded' });
    expect(scheduled(superseded)).toContain('descendantRelations');
    expect(scheduled(superseded)).not.toContain('commitRelation');
    // Runs recorded before these patches replay on their old paths (the first test).
    const older = files().filter((f) => /_publish\.json$/.test(f));
    expect(older.some((f) => !patchesIn(historyOf(f)).includes('publish-repositories-side-by-side'))).toBe(true);
  });

  it('records the rpm signed at package time (sign-at-package) and its promotion', () => {
    const dir = path.join(DIR, 'sign-at-package');
    const found = fs.readdirSync(dir);
    const pipeline = found.find((f) => /^pipeline_[^/]*_[0-9a-f]{40}\.json$/.test(f))!;
    expect(outcomeOf(path.join(dir, pipeline)).result).toMatchObject({ status: 'succeeded' });
    const rpmStage = path.join(
      dir,
      found.find((f) => /_package_rpm-[^/]*\.json$/.test(f))!,
    );
    expect(patchesIn(historyOf(rpmStage))).toContain('sign-at-package');
    const scheduled = historyOf(rpmStage).flatMap((e) => {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      return name ? [name] : [];
    });
    expect(scheduled).toEqual(['buildPackages', 'signPackages']);
    const artifacts = (outcomeOf(rpmStage).result as { artifacts: { signer?: string; key: string }[] }).artifacts;
    expect(artifacts.length).toBeGreaterThan(0);
    for (const a of artifacts) {
      expect(a.signer).toMatch(/^[0-9A-F]{40}$/);
      expect(a.key).toMatch(new RegExp(`^signed/${a.signer}/packages/`));
    }
  });

  it('catches a removed patched() guard: the package stage without sign-at-package', async () => {
    const formatOf = (f: string) => {
      const start = historyOf(f)[0].workflowExecutionStartedEventAttributes;
      const input = defaultPayloadConverter.fromPayload<{ distroSpec?: { format?: string } }>(
        start!.input!.payloads![0],
      );
      return input.distroSpec?.format;
    };
    const rpmStages = files().filter((f) => /_package_[^/]*\.json$/.test(f) && formatOf(f) === 'rpm');
    // rpm stages recorded before the patch replay against the real code (the first test) and must
    // not without the guard: the signing activity would be a command their history lacks. (Those
    // recorded since fail against it too: the SDK matches their marker to a patched() call.)
    const before = rpmStages.filter((f) => !patchesIn(historyOf(f)).includes('sign-at-package'));
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(rpmStages.length - before.length).toBeGreaterThanOrEqual(1);
    const results = await replay([
      '--workflows',
      path.join(__dirname, 'fixtures', 'unguarded-package-workflows.ts'),
      ...before,
    ]);
    expect(
      results.map((r) => `${path.basename(r.file)}: ${r.determinism ? 'nondeterminism' : (r.error ?? 'replayed')}`),
    ).toEqual(before.map((f) => `${path.basename(f)}: nondeterminism`));
  });

  it('catches a removed patched() guard: the promote stage without promote-check-under-lock', async () => {
    const promotes = files().filter((f) => /_promote\.json$/.test(f));
    const patchedOnes = promotes.filter((f) => patchesIn(historyOf(f)).includes('promote-check-under-lock'));
    // Both kinds are recorded: runs from before the patch (they replay) and after it (they must not).
    expect(patchedOnes.length).toBeGreaterThanOrEqual(2);
    expect(promotes.length - patchedOnes.length).toBeGreaterThanOrEqual(1);
    const results = await replay([
      '--workflows',
      path.join(__dirname, 'fixtures', 'unguarded-promote-workflows.ts'),
      ...promotes,
    ]);
    const outcome = (r: Replayed) => (r.determinism ? 'nondeterminism' : r.error ? `error: ${r.error}` : 'replayed');
    expect(results.map((r) => `${path.basename(r.file)}: ${outcome(r)}`)).toEqual(
      promotes.map((f) => `${path.basename(f)}: ${patchedOnes.includes(f) ? 'nondeterminism' : 'replayed'}`),
    );
  });
});
