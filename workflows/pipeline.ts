// The pipeline: one run per pushed commit (ID `pipeline/<owner>/<repo>/<branch>/<sha>`), the parent
// of one child workflow per stage. The chain, in the order of the functions below:
//   test (unit + integration) → build number (branch-state entity) → package (per distro, plus
//   docs) → publish (staging repositories and docs) → deploy (staging hosts per distro, under the
//   fleet's lock; an older commit is superseded) → verify (smoke on every host, then e2e) →
//   release (tag, next patch branch; release branches) → approval (gated rules) → promote (the
//   same bytes to production; skipped when a newer build got there first) → last green build.
// One plan (`planOf`) says which of these a repository's run has; the status table is derived from
// it, so the table and the control flow agree. The run owns its status (query `status`) and
// search attributes, upserted at every stage change so the Web UI and `conveyor list` see where it
// is. Stage results travel as small references (artifact keys and hashes), never bytes.
//
// A failed stage does not end the run: it parks in `awaiting-operator` holding the failure until
// a `retry` re-runs that stage as a new child attempt (`…/<stage>#2`, same inputs; stages that
// succeeded never run again), an `abort` ends the run as `aborted`, or the repository's operator
// window passes and the run fails. Abort (or a Temporal cancel request) cancels what runs; the
// children that write (publish, deploy, release, promote) are cancelled, not terminated, when the
// pipeline is terminated. Operator actions arrive as Updates (validated: a definite answer) or as
// signals of the same names, and are recorded with who sent them. Chat notifications (conveyor.yml
// `notify`) go to a notifier child that outlives the run (workflows/chat-notifier.ts): the chain
// only signals it and never waits for chat.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import type { ChatEvent } from '../common/chat';
import { FailureType, type CommandFailureDetails } from '../common/failures';
import { stageId, type StageName } from '../common/ids';
import { BranchKey, BuildKey, CommitKey, RepositoryKey, StageKey, StatusKey } from '../common/search-attributes';
import type {
  OperatorAction,
  PipelineInput,
  PipelineResult,
  PipelineStatus,
  RunStatus,
  StageStatus,
} from '../common/types';
import {
  abortSignal,
  abortUpdate,
  approveSignal,
  approveUpdate,
  rejectSignal,
  rejectUpdate,
  retrySignal,
  retryUpdate,
  stageNoteSignal,
  statusQuery,
  type AbortRequest,
  type ApproveRequest,
  type RejectRequest,
  type RetryRequest,
} from './messages';
import { docsStage, packageStage, type DocsStageResult, type PackageStageResult } from './stages/package';
import { deployStage, type DeployStageResult } from './stages/deploy';
import { promoteStage } from './stages/promote';
import { publishStage, type PublishStageResult } from './stages/publish';
import { releaseStage } from './stages/release';
import { verifyStage } from './stages/verify';
import { testStage, type TestStageFailureDetails } from './stages/test';
import { messageOf, rootApplicationFailure } from './support';
import { chatReporter, type ChatReporter } from './chat-reporter';
import { countOperatorAction, countRun, observeStage } from './metrics';

const control = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

// Build numbers and the last green build live in the branch-state entity. An unavailable entity
// (the orchestrator cannot reach Temporal for a while) must not fail a run: the allocation retries
// until it answers, and a build that reached production stays succeeded if recording it fails.
// Each attempt is one short Update or signal: 20 s finds an attempt whose worker died.
const entity = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { maximumAttempts: Number.POSITIVE_INFINITY, maximumInterval: '1 minute' },
});

// Audit entries (activities/audit/) on the orchestrator's queue: S3 may be briefly unreachable.
const audit = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 20, maximumInterval: '1 minute' },
});

// Git ancestry on the orchestrator's queue (trusted-queue.ts): this only runs in new runs, which
// all schedule trusted work there. A remote that cannot be reached retries (CheckoutFailed).
const ancestry = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 10, maximumInterval: '30 seconds' },
});

// Commit statuses retry rate limits inside the activity and never throw; another attempt is for a
// worker that died mid-report (found by the heartbeat timeout instead of the 5 minutes, which
// held the run's end that long after a crash: the fault suite's worker-crash scenario).
const github = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * Reports each stage to GitHub as a commit status (`conveyor/<stage>`), off the critical path:
 * reports run beside the stages, in order per context, and are awaited before the run ends. They
 * are not cancelled by an abort, so GitHub hears how the run ended.
 */
function commitStatusReporter(input: PipelineInput) {
  const chains = new Map<string, Promise<unknown>>();
  const info = workflowInfo();
  const targetUrl = input.repository.webUiUrl
    ? `${input.repository.webUiUrl}/namespaces/${encodeURIComponent(info.namespace)}/workflows/${encodeURIComponent(info.workflowId)}`
    : undefined;
  return {
    report(context: string, state: 'pending' | 'success' | 'failure' | 'error', description: string): void {
      const prev = chains.get(context) ?? Promise.resolve();
      const next = prev.then(() =>
        CancellationScope.nonCancellable(() =>
          github.reportCommitStatus({
            repository: input.repository.name,
            sha: input.sha,
            context,
            state,
            description,
            targetUrl,
          }),
        ).catch(() => undefined),
      );
      chains.set(context, next);
    },
    flush(): Promise<unknown> {
      return CancellationScope.nonCancellable(() => Promise.all([...chains.values()]));
    },
  };
}

/** The run's end in chat (status and why), then both reporters' messages handed over. */
function announceEnd(state: PipelineStatus, ops: Operator): Promise<unknown> {
  const kind = state.status as ChatEvent['kind'];
  ops.chat?.emit(kind, {
    ...(state.build !== undefined ? { build: state.build } : {}),
    ...(state.version ? { version: state.version } : {}),
    ...(state.failure ? { reason: state.failure } : {}),
  });
  return Promise.all([ops.statuses.flush(), ops.chat?.flush(), ...ops.audits]);
}

/** Which stages a run has, in the order of the chain. The status table and the control flow both
 * read this one plan, so they cannot disagree about what runs. */
export interface Plan {
  /** Repositories without a `package` step are tested only. */
  packaged: boolean;
  /** Distros built, deployed (when the repository names staging hosts). */
  packages: string[];
  docs: boolean;
  deploy: string[];
  verify: boolean;
  release: boolean;
  approval: boolean;
}

export function planOf(repository: PipelineInput['repository']): Plan {
  const packaged = Boolean(repository.steps.package);
  const staging = packaged && Boolean(repository.staging);
  return {
    packaged,
    packages: packaged ? repository.distros : [],
    docs: packaged && Boolean(repository.steps.docs),
    deploy: staging ? repository.distros : [],
    verify: staging && Boolean(repository.steps.smoke || repository.steps.e2e),
    release: packaged && repository.release,
    approval: packaged && repository.approval,
  };
}

/** The status table of a plan: one row per stage child, in chain order. */
function stagesOf(plan: Plan, id: string): StageStatus[] {
  const stage = (name: StageName, distro?: string): StageStatus => ({
    name,
    distro,
    state: 'pending',
    attempt: 1,
    workflowId: stageId(id, name, distro),
    logKeys: [],
  });
  if (!plan.packaged) return [stage('test')];
  return [
    stage('test'),
    ...plan.packages.map((d) => stage('package', d)),
    ...(plan.docs ? [stage('package', 'docs')] : []),
    stage('publish'),
    ...plan.deploy.map((d) => stage('deploy', d)),
    ...(plan.verify ? [stage('verify')] : []),
    ...(plan.release ? [stage('release')] : []),
    stage('promote'),
  ];
}

/** What every stage function of one run shares. */
interface Run {
  id: string;
  input: PipelineInput;
  plan: Plan;
  state: PipelineStatus;
  ops: Operator;
  /** Set when a newer commit or build took this run's place (deploy or promote skipped). */
  supersededBy?: string;
}

/** The chain, per pushed commit: test → build number → package → publish → deploy → verify →
 * release → approval → promote → last green build. Each step is a function below, in this order. */
export async function pipeline(input: PipelineInput): Promise<PipelineResult> {
  const id = workflowInfo().workflowId;
  const { repository, branch, sha } = input;
  const plan = planOf(repository);
  const state: PipelineStatus = {
    workflowId: id,
    repository: repository.name,
    branch,
    sha,
    status: 'running',
    // From the run's input, so a rerun or a replay shows the same; absent for runs started before
    // sandboxing existed.
    sandbox: repository.sandbox?.mode,
    startedAt: now(),
    stages: stagesOf(plan, id),
  };
  setHandler(statusQuery, () => state);
  const ops: Operator = {
    waiting: new Set(),
    granted: new Set(),
    aborted: undefined,
    windowSeconds: repository.operatorWindowSeconds,
    audits: [],
    statuses: commitStatusReporter(input),
    chat: chatReporter(input),
  };
  ops.chat?.emit('started');
  const run: Run = { id, input, plan, state, ops };
  const chain = new CancellationScope();
  operatorHandlers(run, chain);
  upsertSearchAttributes([
    { key: RepositoryKey, value: repository.name },
    { key: BranchKey, value: branch },
    { key: CommitKey, value: sha },
    { key: StatusKey, value: 'running' },
  ]);

  let outcome: 'rejected' | 'expired' | undefined;
  try {
    await chain.run(async () => {
      await test(run);
      if (!plan.packaged) return;
      const build = await buildNumber(run);
      if (build === undefined) return; // superseded by a newer commit delivered first
      const { packaged, docs } = await packages(run, build);
      await publish(run, packaged, docs);
      if (plan.deploy.length > 0) {
        const hosts = await deploy(run, packaged);
        if (!hosts) return; // superseded by a newer commit
        if (plan.verify) await verify(run, build, packaged, hosts);
      }
      if (plan.release) await release(run);
      if (plan.approval) {
        const decision = await approvalGate(state, ops, repository.approvalTimeoutSeconds ?? 3 * 86400);
        if (decision !== 'approved') {
          outcome = decision;
          return;
        }
      }
      if (!(await promote(run, packaged, docs))) return;
      await recordGreen(run, build);
    });
  } catch (err) {
    if (isCancellation(err) || ops.aborted) {
      const reason = ops.aborted
        ? `aborted${ops.aborted.by ? ` by ${ops.aborted.by}` : ''}: ${ops.aborted.reason}`
        : 'cancelled';
      for (const st of state.stages) if (st.state === 'running') st.state = 'failed';
      end(state, 'aborted', reason);
      await announceEnd(state, ops);
      // A Temporal cancel request ends the run Cancelled; an `abort` ends it Failed (type Aborted).
      if (!ops.aborted) throw err;
      throw ApplicationFailure.create({ type: FailureType.Aborted, message: reason, nonRetryable: true });
    }
    const failed = state.stages.find((st) => st.state === 'failed');
    end(state, 'failed', failed ? `stage ${label(failed)} failed: ${failed.error}` : messageOf(err));
    await announceEnd(state, ops);
    throw ApplicationFailure.create({
      type: FailureType.StageFailed,
      message: state.failure ?? 'pipeline failed',
      nonRetryable: true,
      details: [{ stage: failed ? label(failed) : undefined, tail: failed?.tail, logKeys: failed?.logKeys }],
    });
  }
  if (outcome) end(state, outcome, outcome === 'rejected' ? `rejected by ${state.approval?.by}` : 'approval expired');
  else end(state, run.supersededBy ? 'superseded' : 'succeeded', run.supersededBy);
  await announceEnd(state, ops);
  return {
    status: state.status,
    stages: state.stages,
    build: state.build,
    version: state.version,
    published: state.published,
    promoted: state.promoted,
    hosts: state.hosts,
  };
}

/** 1. test: the unit and integration steps, on the first distro's build queue. */
async function test({ id, input, state, ops }: Run): Promise<void> {
  const { repository, branch, sha } = input;
  await runStage(state, ops, 'test', undefined, async (s) => {
    const result = await executeChild(testStage, {
      workflowId: s.workflowId,
      args: [{ pipelineId: id, repository, branch, sha, distro: repository.distros[0] }],
      staticSummary: `test: ${Object.keys(repository.steps)
        .filter((k) => k === 'unit' || k === 'integration')
        .join(' + ')} at ${sha.slice(0, 12)}`,
    });
    s.logKeys = result.steps.map((r) => r.logKey);
  });
}

/** 2. build number: the branch-state entity hands it out; asking again (a retried pipeline)
 * returns the same one. */
async function buildNumber(run: Run): Promise<number | undefined> {
  const { id, input, state } = run;
  const { build } = await entity.allocateBuild({
    repository: input.repository.name,
    branch: input.branch,
    pipelineId: id,
  });
  state.build = build;
  upsertSearchAttributes([{ key: BuildKey, value: build }]);
  // A newer commit delivered before this one (its descendant) already has an earlier build
  // number: building this one now would give older code the higher version, which apt and dnf
  // then prefer, and the newer commit's deploy a downgrade. Such a run ends superseded here.
  // A check that cannot be made (the remote gone for good) is a warning, not a failed run.
  if (patched('older-commit-superseded-at-build')) {
    try {
      const descendant = await descendantWithEarlierBuild(run, build);
      if (descendant) {
        run.supersededBy = `commit ${descendant.sha.slice(0, 12)}, a descendant of this one, already has build ${descendant.build}: an older commit is not built after it`;
        return undefined;
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      state.warnings = [
        ...(state.warnings ?? []),
        `could not check whether a newer commit already has a build: ${messageOf(err)}`,
      ];
    }
  }
  return build;
}

async function descendantWithEarlierBuild({ id, input }: Run, build: number) {
  const earlier = await control.earlierBuilds({
    repository: input.repository.name,
    branch: input.branch,
    pipelineId: id,
    build,
  });
  // Since this patch, one activity asks about every earlier build: one fetch of the remote instead
  // of one per build, in sequence, between test and package. Runs recorded before it asked one
  // build at a time, and replay must see those same commands.
  if (patched('earlier-builds-one-check')) {
    const others = earlier.filter((e) => e.sha !== input.sha);
    if (others.length === 0) return undefined;
    const { relations } = await ancestry.descendantRelations({
      cloneUrl: input.repository.cloneUrl,
      ancestor: input.sha,
      descendants: others.map((e) => e.sha),
    });
    // Newest first, as the loop below answers.
    return others.find((_, i) => relations[i] === 'ancestor');
  }
  for (const e of earlier) {
    if (e.sha === input.sha) continue;
    const { relation } = await ancestry.commitRelation({
      cloneUrl: input.repository.cloneUrl,
      ancestor: input.sha,
      descendant: e.sha,
    });
    if (relation === 'ancestor') return e;
  }
  return undefined;
}

/** 3. package: every distro (and the docs) in parallel; all run to the end so the status shows
 * each outcome, then the first failure (if any) stops the chain. */
async function packages(
  { id, input, plan, state, ops }: Run,
  build: number,
): Promise<{ packaged: PackageStageResult[]; docs: DocsStageResult['docs'] }> {
  const { repository, branch, sha } = input;
  const packaging = plan.packages.map((distro) =>
    runStage(state, ops, 'package', distro, async (s) => {
      const r = await executeChild(packageStage, {
        workflowId: s.workflowId,
        args: [{ pipelineId: id, repository, branch, sha, distro, distroSpec: repository.distroSpecs[distro], build }],
        staticSummary: `package ${repository.name} build ${build} for ${distro}`,
      });
      s.logKeys = [r.logKey];
      return r;
    }),
  );
  const docsBuild = plan.docs
    ? runStage(state, ops, 'package', 'docs', async (s) => {
        const r = await executeChild(docsStage, {
          workflowId: s.workflowId,
          args: [{ pipelineId: id, repository, branch, sha, build, distro: repository.distros[0] }],
          staticSummary: `docs of ${repository.name} build ${build}`,
        });
        if (r.logKey) s.logKeys = [r.logKey];
        return r.docs;
      })
    : Promise.resolve(null);
  const [settledPackages, settledDocs] = await Promise.all([
    Promise.allSettled(packaging),
    Promise.allSettled([docsBuild]),
  ]);
  const firstFailure = [...settledPackages, ...settledDocs].find((r) => r.status === 'rejected');
  if (firstFailure) throw firstFailure.reason;
  const packaged = settledPackages.map((r) => (r as PromiseFulfilledResult<PackageStageResult>).value);
  const docs = (settledDocs[0] as PromiseFulfilledResult<Awaited<typeof docsBuild>>).value;
  state.version = `${packaged[0].version}-${build}`;
  return { packaged, docs };
}

/** 4. publish: the staging repositories and docs, channel from the branch rule. */
async function publish(
  { id, input, state, ops }: Run,
  packaged: PackageStageResult[],
  docs: DocsStageResult['docs'],
): Promise<void> {
  const { repository } = input;
  await runStage(state, ops, 'publish', undefined, async (s) => {
    const r = await executeChild(publishStage, {
      workflowId: s.workflowId,
      // Terminating the pipeline asks this child to cancel (it releases its lock, rolls back)
      // instead of killing it mid-write.
      parentClosePolicy: 'REQUEST_CANCEL',
      args: [
        {
          pipelineId: id,
          repository,
          environment: 'staging',
          channel: repository.channel,
          packages: byDistro(repository.distros, packaged),
          docs,
        },
      ],
      staticSummary: `publish ${repository.name} ${state.version} to staging ${repository.channel}`,
    });
    state.published = whereTo(r);
  });
}

/** 5. deploy: one child per distro, in parallel (each holds its own fleet's lock). Returns the
 * upgraded hosts per distro, or undefined when a newer commit superseded this one. */
async function deploy(run: Run, packaged: PackageStageResult[]): Promise<DeployedHosts | undefined> {
  const { id, input, state, ops } = run;
  const { repository, branch, sha } = input;
  const published = state.published as NonNullable<PipelineStatus['published']>;
  const base = repository.publicUrls.staging;
  const deploying = repository.distros.map((distro, i) =>
    runStage(state, ops, 'deploy', distro, async (s) => {
      const repo = published.repositories.find((x) => x.distro === distro);
      const r = await recordHosts(
        state,
        distro,
        executeChild(deployStage, {
          workflowId: s.workflowId,
          // Terminating the pipeline asks this child to cancel (it releases its lock, rolls back)
          // instead of killing it mid-write.
          parentClosePolicy: 'REQUEST_CANCEL',
          args: [
            {
              pipelineId: id,
              repository,
              branch,
              sha,
              distro,
              distroSpec: repository.distroSpecs[distro],
              environment: 'staging',
              version: state.version as string,
              packages: [...new Set(packaged[i].artifacts.map((a) => a.name))],
              repo: {
                url: `${base}/${repo?.path ?? ''}`,
                suite: repo?.suite,
                keyUrl: `${base}/keys/conveyor.asc`,
              },
            },
          ],
          staticSummary: `deploy ${repository.name} ${state.version} to staging ${distro} hosts`,
        }),
      );
      state.hosts = [...(state.hosts ?? []).filter((h) => h.distro !== distro), { distro, hosts: r.hosts }];
      if (r.status === 'superseded') s.error = r.reason;
      if (r.warning) state.warnings = [...(state.warnings ?? []), `deploy/${distro}: ${r.warning}`];
      return { distro, result: r };
    }),
  );
  const deployed = await Promise.allSettled(deploying);
  const deployFailure = deployed.find((r) => r.status === 'rejected');
  if (deployFailure) throw deployFailure.reason;
  const results = deployed.map(
    (r) => (r as PromiseFulfilledResult<{ distro: string; result: DeployStageResult }>).value,
  );
  const superseded = results.find((r) => r.result.status === 'superseded');
  if (superseded) {
    for (const st of state.stages)
      if (st.name === 'deploy' && results.some((r) => r.distro === st.distro && r.result.status === 'superseded'))
        st.state = 'skipped';
    run.supersededBy = superseded.result.reason;
    return undefined;
  }
  return results.map((x) => ({ distro: x.distro, hosts: x.result.upgraded }));
}

type DeployedHosts = { distro: string; hosts: DeployStageResult['upgraded'] }[];

/** 6. verify: smoke on every upgraded host, then e2e from a build worker against them. */
async function verify(
  { id, input, state, ops }: Run,
  build: number,
  packaged: PackageStageResult[],
  hosts: DeployedHosts,
): Promise<void> {
  const { repository, branch, sha } = input;
  await runStage(state, ops, 'verify', undefined, async (s) => {
    const r = await executeChild(verifyStage, {
      workflowId: s.workflowId,
      args: [
        {
          pipelineId: id,
          repository,
          branch,
          sha,
          version: packaged[0].version,
          build,
          hosts,
          packages: [...new Set(packaged.flatMap((p) => p.artifacts.map((a) => a.name)))],
        },
      ],
      staticSummary: `verify ${repository.name} ${state.version} on staging: smoke, then e2e`,
    });
    s.logKeys = [
      ...r.smoke.map((c) => c.logKey),
      ...(r.e2e ? [r.e2e.logKey] : []),
      ...(r.examples?.hosts.map((h) => h.logKey) ?? []),
    ];
  });
}

/** 7. release (release branches): tag the tested commit, cut the next patch branch. */
async function release({ id, input, state, ops }: Run): Promise<void> {
  const { repository, branch, sha } = input;
  await runStage(state, ops, 'release', undefined, async (s) => {
    const r = await executeChild(releaseStage, {
      workflowId: s.workflowId,
      // Terminating the pipeline asks this child to cancel (it releases its lock, rolls back)
      // instead of killing it mid-write.
      parentClosePolicy: 'REQUEST_CANCEL',
      args: [{ pipelineId: id, repository, branch, sha }],
      staticSummary: `release ${repository.name}: tag and cut the next patch branch`,
    });
    state.release = { tag: r.tag, nextBranch: r.nextBranch };
  });
}

/** 9. promote: the same bytes to production. False when a newer build got there first. */
async function promote(run: Run, packaged: PackageStageResult[], docs: DocsStageResult['docs']): Promise<boolean> {
  const { id, input, state, ops } = run;
  const { repository } = input;
  await runStage(state, ops, 'promote', undefined, async () => {
    const r = await executeChild(promoteStage, {
      workflowId: stageId(id, 'promote', undefined, state.stages.find((x) => x.name === 'promote')?.attempt ?? 1),
      // Terminating the pipeline asks this child to cancel (it releases its lock, rolls back)
      // instead of killing it mid-write.
      parentClosePolicy: 'REQUEST_CANCEL',
      args: [
        {
          pipelineId: id,
          repository,
          channel: repository.channel,
          version: state.version as string,
          packages: byDistro(repository.distros, packaged),
          docs,
          skipIfOlder: true,
        },
      ],
      staticSummary: `promote ${repository.name} ${state.version} to production ${repository.channel}`,
    });
    if (r.skipped) {
      // A newer build of this branch reached production first: nothing to promote.
      run.supersededBy = r.skipped;
      return;
    }
    state.promoted = whereTo(r);
  });
  if (run.supersededBy) {
    const st = state.stages.find((x) => x.name === 'promote');
    if (st) st.state = 'skipped';
    return false;
  }
  return true;
}

/** 10. the last green build, in branch-state. Promoted is promoted: a failure here only leaves
 * branch-state behind, and the run says so. */
async function recordGreen({ input, state }: Run, build: number): Promise<void> {
  await control
    .recordGreen({
      repository: input.repository.name,
      branch: input.branch,
      build,
      sha: input.sha,
      version: state.version as string,
      at: now(),
    })
    .catch((err: unknown) => {
      // With its causes ("Failed to signalWithStart Workflow: 14 UNAVAILABLE: …"), not the
      // wrapper's "Activity task failed". Status only: no command changes.
      const app = rootApplicationFailure(err);
      const why = app ? [app.message, app.cause?.message].filter(Boolean).join(': ') : messageOf(err);
      state.failure = `promoted, but recording the green build failed: ${why}`;
    });
}

/**
 * The operator actions: each a check (why it cannot be done now, or nothing) and an effect.
 * Updates refuse in their validator with the check's reason; the signals of the same names record
 * it as ignored. Who sent what is recorded in the status (state only: no commands, so older
 * histories replay).
 */
function operatorHandlers({ id, state, ops }: Run, chain: CancellationScope): void {
  let seq = 0;
  const record = (
    action: OperatorAction['action'],
    by: string | undefined,
    detail: string | undefined,
    accepted: boolean,
  ) => {
    const at = now();
    const actions = (state.actions ??= []);
    actions.push({ action, by: by || 'unknown', at, ...(detail ? { detail } : {}), accepted });
    if (actions.length > 100) actions.splice(0, actions.length - 100);
    countOperatorAction(action, accepted);
    seq += 1;
    // The audit trail outlives this run's history (activities/audit/). A new command, so only in
    // runs that recorded the patch; not cancellable, so an abort's own entry is written, and
    // awaited before the run ends (announceEnd). The id (run ID and action number) makes a
    // retried write the same entry.
    if (patched('audit-trail')) {
      const entry = { at, by: by || 'unknown', action, target: id, accepted, ...(detail ? { why: detail } : {}) };
      const write = CancellationScope.nonCancellable(() =>
        audit.recordAudit({ entry, id: `${workflowInfo().runId}-${seq}` }),
      ).catch((err: unknown) => {
        (state.warnings ??= []).push(`the audit entry of ${action} by ${entry.by} was not written: ${messageOf(err)}`);
      });
      ops.audits.push(write);
    }
  };
  const retryable = (req: RetryRequest) =>
    state.stages.filter(
      (s) => ops.waiting.has(label(s)) && (!req.stage || req.stage === label(s) || req.stage === s.name),
    );
  const checks = {
    retry: (req: RetryRequest): string | undefined => {
      if (state.status !== 'awaiting-operator')
        return `nothing awaits an operator in ${id}: the run is ${state.status}`;
      if (retryable(req).length === 0) {
        const waiting = state.stages.filter((s) => ops.waiting.has(label(s))).map(label);
        return `stage ${req.stage} does not wait for a retry in ${id} (waiting: ${waiting.join(', ')})`;
      }
      return undefined;
    },
    decide: (): string | undefined =>
      ops.approvalOpen && !ops.decision ? undefined : `nothing awaits approval in ${id}: the run is ${state.status}`,
    abort: (): string | undefined =>
      ops.aborted || state.endedAt ? `${id} has already ended (${state.status}): nothing to abort` : undefined,
  };
  const effects = {
    retry: (req: RetryRequest): string => {
      const stages = retryable(req).map(label);
      stages.forEach((l) => ops.granted.add(l));
      return stages.join(', ');
    },
    approve: (req: ApproveRequest): string => {
      ops.decision = { kind: 'approved', by: req.by, comment: req.comment };
      return 'approved';
    },
    reject: (req: RejectRequest): string => {
      ops.decision = { kind: 'rejected', by: req.by, comment: req.reason };
      return 'rejected';
    },
    abort: (req: AbortRequest): string => {
      ops.aborted = req;
      chain.cancel();
      return 'aborted';
    },
  };
  const refuse = (reason: string | undefined) => {
    if (reason) throw ApplicationFailure.create({ type: FailureType.Refused, message: reason, nonRetryable: true });
  };
  setHandler(stageNoteSignal, (n) => {
    const s = state.stages.find((st) => st.workflowId === n.workflowId);
    if (s) s.note = n.note;
  });
  setHandler(retrySignal, (req) => {
    const accepted = !checks.retry(req);
    record('retry', req.by, req.stage, accepted);
    if (accepted) effects.retry(req);
  });
  setHandler(approveSignal, (req) => {
    const accepted = !checks.decide();
    record('approve', req.by, req.comment, accepted);
    if (accepted) effects.approve(req);
  });
  setHandler(rejectSignal, (req) => {
    const accepted = !checks.decide();
    record('reject', req.by, req.reason, accepted);
    if (accepted) effects.reject(req);
  });
  setHandler(abortSignal, (req) => {
    const accepted = !checks.abort();
    record('abort', req.by, req.reason, accepted);
    if (accepted) effects.abort(req);
  });
  setHandler(
    retryUpdate,
    (req) => {
      record('retry', req.by, req.stage, true);
      return { accepted: true as const, detail: effects.retry(req) };
    },
    { validator: (req: RetryRequest) => refuse(checks.retry(req)) },
  );
  setHandler(
    approveUpdate,
    (req) => {
      record('approve', req.by, req.comment, true);
      return { accepted: true as const, detail: effects.approve(req) };
    },
    { validator: (_req) => refuse(checks.decide()) },
  );
  setHandler(
    rejectUpdate,
    (req) => {
      record('reject', req.by, req.reason, true);
      return { accepted: true as const, detail: effects.reject(req) };
    },
    { validator: (_req) => refuse(checks.decide()) },
  );
  setHandler(
    abortUpdate,
    (req) => {
      record('abort', req.by, req.reason, true);
      return { accepted: true as const, detail: effects.abort(req) };
    },
    { validator: (_req) => refuse(checks.abort()) },
  );
}

/**
 * The approval gate: the run waits in `awaiting-approval` for `approve` or `reject` (from
 * `conveyor approve|reject` or `temporal workflow signal`), recording who and when, until the
 * timeout, after which it ends `expired`. Signals that arrive when nothing waits are ignored.
 */
async function approvalGate(
  state: PipelineStatus,
  ops: Operator,
  timeoutSeconds: number,
): Promise<'approved' | 'rejected' | 'expired'> {
  state.approval = { requestedAt: now() };
  state.stage = 'promote';
  setStatus(state, 'awaiting-approval');
  ops.approvalOpen = true;
  ops.statuses.report('conveyor/approval', 'pending', 'waiting for approval');
  ops.chat?.emit('awaiting-approval', {
    ...(state.build !== undefined ? { build: state.build } : {}),
    ...(state.version ? { version: state.version } : {}),
  });
  const decided = await condition(() => ops.decision !== undefined, `${timeoutSeconds} seconds`);
  ops.approvalOpen = false;
  const d = ops.decision;
  if (!decided || !d) {
    state.approval = { ...state.approval, decision: 'expired', at: now() };
    ops.statuses.report('conveyor/approval', 'error', 'approval expired');
    return 'expired';
  }
  state.approval = { ...state.approval, decision: d.kind, by: d.by, at: now(), comment: d.comment };
  ops.statuses.report(
    'conveyor/approval',
    d.kind === 'approved' ? 'success' : 'failure',
    `${d.kind} by ${d.by}`.slice(0, 140),
  );
  setStatus(state, 'running');
  return d.kind;
}

/** Where a publish or promote put the build, as the run's status shows it. */
function whereTo(r: PublishStageResult): NonNullable<PipelineStatus['published']> {
  return {
    environment: r.environment,
    channel: r.channel,
    repositories: r.repositories.map((x) => ({
      distro: x.distro,
      path: x.path,
      suite: x.suite,
      ...(x.dropped?.length ? { dropped: x.dropped } : {}),
    })),
    docs: r.docs?.index,
  };
}

/** The package stages' artifacts per distro (results are in the order of `distros`). */
function byDistro(distros: string[], packaged: PackageStageResult[]) {
  return packaged.map((p, i) => ({ distro: distros[i], artifacts: p.artifacts }));
}

function elapsed(s: StageStatus): number {
  return (Date.parse(s.endedAt ?? '') - Date.parse(s.startedAt ?? '')) / 1000;
}

function seconds(s: StageStatus): string {
  return `${elapsed(s).toFixed(1)} s`;
}

/** Keeps the hosts' report in the run's status also when the deploy fails (and rolled back). */
async function recordHosts<T>(state: PipelineStatus, distro: string, run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (err) {
    const hosts = hostsOf(err);
    if (hosts) state.hosts = [...(state.hosts ?? []).filter((h) => h.distro !== distro), { distro, hosts }];
    throw err;
  }
}

/** The per-host report a failed deploy carries in its failure details. */
function hostsOf(err: unknown): DeployStageResult['hosts'] | undefined {
  const details = rootApplicationFailure(err)?.details?.[0] as { hosts?: DeployStageResult['hosts'] } | undefined;
  return details?.hosts;
}

function label(s: StageStatus): string {
  return s.distro ? `${s.name}/${s.distro}` : s.name;
}

function now(): string {
  // Date in workflow code is the SDK's deterministic clock (the workflow task's time).
  return new Date().toISOString();
}

interface Operator {
  /** Labels (`package/el9`) of failed stages waiting for a decision. */
  waiting: Set<string>;
  /** Labels an operator has asked to retry. */
  granted: Set<string>;
  aborted: AbortRequest | undefined;
  windowSeconds: number;
  /** Audit trail writes in flight (operatorHandlers), awaited before the run ends. */
  audits: Promise<unknown>[];
  statuses: ReturnType<typeof commitStatusReporter>;
  /** The run's chat notifications; undefined without routes (and in older histories). */
  chat?: ChatReporter;
  /** True while the approval gate waits; approve/reject are ignored otherwise. */
  approvalOpen?: boolean;
  decision?: { kind: 'approved' | 'rejected'; by: string; comment?: string };
}

/**
 * Runs one stage, keeping its status entry and the ConveyorStage search attribute current. On
 * failure it waits for the operator; a retry runs `body` again as the next attempt (the stage's
 * workflowId then carries `#<attempt>`), with the same inputs.
 */
async function runStage<T>(
  state: PipelineStatus,
  ops: Operator,
  name: StageName,
  distro: string | undefined,
  body: (s: StageStatus) => Promise<T>,
): Promise<T> {
  const s = state.stages.find((x) => x.name === name && x.distro === distro);
  if (!s) throw ApplicationFailure.nonRetryable(`unknown stage ${name}/${distro}`, FailureType.BadConfig);
  for (;;) {
    s.state = 'running';
    s.startedAt = now();
    s.endedAt = undefined;
    s.error = undefined;
    s.tail = undefined;
    state.stage = name;
    upsertSearchAttributes([{ key: StageKey, value: name }]);
    const context = `conveyor/${label(s)}`;
    ops.statuses.report(context, 'pending', s.attempt > 1 ? `attempt ${s.attempt} running` : 'running');
    try {
      const r = await body(s);
      s.state = 'succeeded';
      s.endedAt = now();
      observeStage(name, distro, 'succeeded', elapsed(s));
      ops.statuses.report(context, 'success', `passed in ${seconds(s)}`);
      return r;
    } catch (err) {
      if (isCancellation(err)) {
        observeStage(name, distro, 'cancelled', (Date.now() - Date.parse(s.startedAt ?? '')) / 1000);
        ops.statuses.report(context, 'error', 'aborted');
        throw err;
      }
      fail(s, err);
      observeStage(name, distro, 'failed', elapsed(s));
      ops.statuses.report(context, 'failure', (s.error ?? 'failed').slice(0, 140));
      ops.chat?.emit('stage-failed', {
        stage: label(s),
        attempt: s.attempt,
        ...(state.build !== undefined ? { build: state.build } : {}),
        ...(s.error ? { error: s.error } : {}),
        ...(s.tail ? { tail: s.tail } : {}),
        logKeys: s.logKeys,
      });
      if (!(await awaitOperator(state, ops, s))) throw err;
      s.attempt += 1;
      s.workflowId = stageId(state.workflowId, name, distro, s.attempt);
    }
  }
}

/** True when an operator asked for a retry; false when the window passed. Abort cancels the wait. */
async function awaitOperator(state: PipelineStatus, ops: Operator, s: StageStatus): Promise<boolean> {
  const l = label(s);
  ops.waiting.add(l);
  setStatus(state, 'awaiting-operator');
  try {
    await condition(() => ops.granted.has(l), `${ops.windowSeconds} seconds`);
  } finally {
    ops.waiting.delete(l);
  }
  const retry = ops.granted.delete(l);
  if (ops.waiting.size === 0) setStatus(state, 'running');
  return retry;
}

function setStatus(state: PipelineStatus, status: RunStatus): void {
  if (state.status === status) return;
  state.status = status;
  upsertSearchAttributes([{ key: StatusKey, value: status }]);
}

function fail(stage: StageStatus, err: unknown): void {
  stage.state = 'failed';
  stage.endedAt = now();
  const app = rootApplicationFailure(err);
  const details = app?.details?.[0] as (Partial<TestStageFailureDetails> & Partial<CommandFailureDetails>) | undefined;
  if (details?.failed) {
    stage.logKeys = [...(details.passed ?? []).map((p) => p.logKey), ...details.failed.map((f) => f.logKey)].filter(
      Boolean,
    );
    stage.tail = details.failed.map((f) => `--- ${f.step} (exit ${f.exitCode ?? f.signal})\n${f.tail}`).join('\n');
  } else if (details?.logKey || details?.tail) {
    // A tail without a log: e.g. the documented examples' problems, found before anything ran.
    stage.logKeys = details.logKey ? [details.logKey] : [];
    stage.tail = details.tail;
  } else if (hostsOf(err)) {
    stage.tail = (hostsOf(err) ?? [])
      .map(
        (h) =>
          `${h.name}: ${h.before ?? '(not installed)'} → ${h.after ?? '?'} ${h.outcome}${h.error ? ` (${h.error})` : ''}`,
      )
      .join('\n');
  }
  stage.error = app?.message ?? messageOf(err);
}

function end(state: PipelineStatus, status: RunStatus, failure?: string): void {
  state.endedAt = now();
  for (const st of state.stages) if (st.state === 'pending') st.state = 'skipped';
  if (failure) state.failure = failure;
  setStatus(state, status);
  countRun(state.repository, status);
}
