// Deploy stage (staging): one child per distro (`…/deploy/<distro>`). Under the environment lock
// of that distro's fleet it skips work that is stale (a newer commit of the branch queued behind it,
// or a commit that is an ancestor of the one already deployed — asked of git, never of arrival
// order), finds the hosts through EC2 tags, and upgrades them in batches from the PUBLISHED
// staging repository, checking the installed version and running the smoke step on each upgraded
// host as the batch's health check. The first failed batch stops the rollout and
// rolls that batch and every host upgraded before it back to the version each had before.
// Since patch `deploy-prepare-ahead`, each host is prepared first (prepareHost: the versions of all
// its packages in one activity, and its package metadata refreshed for the published repository),
// and the NEXT batch is prepared while the current one upgrades and runs its smoke step, so the
// refresh of later hosts (with apt's cache rebuild from the new lists) is off the critical path.
// Hosts prepared but never upgraded are not rolled back (nothing was installed there) and stay
// 'not-started'; a failed prepare counts with its own batch, never before the batch in front of
// it, and the stage (and so the lock) waits for a prepare running ahead whatever happens. Runs
// recorded before the patch keep one hostVersion per host and package.
// Every activity here is trusted work (git ancestry, EC2, SSH/SSM, local hosts): it runs on the
// orchestrator's queue, never on a builder (workflows/trusted-queue.ts).
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  patched,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { OrchestratorActivities } from '../../activities';
import type { Host, PrepareHostResult } from '../../activities/fleet';
import { FailureType } from '../../common/failures';
import { deployLockId } from '../../common/ids';
import type { DistroSpec, RepositorySpec } from '../../common/types';
import { lockClient } from '../lock';
import { messageOf, rootApplicationFailure, stepEnvFor } from '../support';
import { trustedQueue } from '../trusted-queue';

export interface DeployStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  distro: string;
  distroSpec: DistroSpec;
  environment: 'staging';
  /** `<version>-<build>` of every package below. */
  version: string;
  packages: string[];
  /** The published repository the hosts install from. */
  repo: { url: string; suite?: string; keyUrl: string };
  /** Deploy even when the commit is an ancestor of the one deployed (operator's decision). */
  force?: boolean;
}

export type HostOutcome = 'upgraded' | 'unchanged' | 'failed' | 'rolled-back' | 'rollback-failed' | 'not-started';

export interface HostReport {
  instanceId: string;
  name: string;
  before: string | null;
  after: string | null;
  outcome: HostOutcome;
  error?: string;
  logKey?: string;
}

export interface DeployStageResult {
  status: 'deployed' | 'superseded';
  reason?: string;
  hosts: HostReport[];
  /** The hosts that now run the version, for the verify stage. */
  upgraded: Host[];
  /** Deployed, but something the operator should know (the deployed commit had vanished). */
  warning?: string;
}

export async function deployStage(input: DeployStageInput): Promise<DeployStageResult> {
  const withLock = lockClient();
  const me = workflowInfo().workflowId;
  // The queue is asked for at each call: it changes once in a run recorded before the patch.
  // Activities that run under the fleet's lock wait for their own cancellation: the lock is
  // released only once nothing of this deploy still touches a host. Inner timeouts (an SSM
  // execution, the smoke step) are shorter than these start-to-close timeouts.
  const fleet = (startToCloseSeconds = 1800) =>
    proxyActivities<OrchestratorActivities>({
      taskQueue: trustedQueue(input.distro),
      startToCloseTimeout: `${startToCloseSeconds} seconds`,
      heartbeatTimeout: '1 minute',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: {
        maximumAttempts: 3,
        nonRetryableErrorTypes: [FailureType.VersionMismatch, FailureType.BadConfig, FailureType.CommitNotFound],
      },
    });
  const smokeSeconds = input.repository.stepTimeoutSeconds;
  const staging = input.repository.staging ?? { tags: {}, batchSize: 1 };
  const repoName = input.repository.name;
  const lockId = deployLockId(input.environment, input.distro);

  return withLock<DeployStageResult>(
    lockId,
    { repository: repoName, branch: input.branch, sha: input.sha },
    async (grant) => {
      if (input.repository.supersede) {
        for (const q of grant.queued ?? []) {
          const m = q.meta;
          if (!m || m.repository !== repoName || m.branch !== input.branch || m.sha === input.sha) continue;
          const pair = { cloneUrl: input.repository.cloneUrl, ancestor: input.sha, descendant: m.sha };
          if (
            patched('deployed-commit-may-vanish')
              ? (await fleet().commitRelation(pair)).relation === 'ancestor'
              : await fleet().isAncestor(pair)
          ) {
            return {
              result: {
                status: 'superseded',
                reason: `superseded by ${m.sha}, queued behind this deploy`,
                hosts: [],
                upgraded: [],
              },
            };
          }
        }
      }
      const deployed = grant.records?.[repoName];
      // Build numbers count per branch, so a build of another branch can carry a lower version than
      // what the hosts run: moving the environment to another branch's build is a deliberate
      // switch, and (like --force) may go down. Within one branch, ancestry decides above.
      const switching = Boolean(deployed && deployed.branch !== input.branch);
      let warning: string | undefined;
      if (deployed && deployed.sha !== input.sha && !input.force) {
        const older = {
          result: {
            status: 'superseded' as const,
            reason: `${input.sha} is an ancestor of ${deployed.sha} (${deployed.version}), already deployed to ${input.environment}`,
            hosts: [],
            upgraded: [],
          },
        };
        const ancestry = { cloneUrl: input.repository.cloneUrl, ancestor: input.sha, descendant: deployed.sha };
        if (patched('deployed-commit-may-vanish')) {
          // A deployed commit the repository no longer has (force-push, moved or recreated
          // repository) is not an outage: deploy, and say so, instead of parking the run.
          const { relation } = await fleet().commitRelation(ancestry);
          if (relation === 'ancestor') return older;
          if (relation === 'ancestor-missing') {
            throw ApplicationFailure.create({
              type: FailureType.CommitNotFound,
              message: `commit ${input.sha} is no longer in ${input.repository.cloneUrl}: nothing to deploy`,
              nonRetryable: true,
            });
          }
          if (relation === 'descendant-missing') {
            warning =
              `the deployed commit ${deployed.sha} (${deployed.version}) is no longer in ${input.repository.cloneUrl} ` +
              `(history rewritten, or the repository moved): deployed ${input.sha} without the ancestry check`;
          }
        } else if (await fleet().isAncestor(ancestry)) {
          return older;
        }
      }

      const hosts = await fleet().discoverHosts({ tags: staging.tags, distro: input.distro });
      if (hosts.length === 0) {
        throw ApplicationFailure.create({
          type: FailureType.NoHosts,
          message: `no running ${input.environment} hosts match ${Object.entries({
            ...staging.tags,
            Distro: input.distro,
          })
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}`,
          nonRetryable: true,
        });
      }
      const reports: HostReport[] = hosts.map((h) => ({
        instanceId: h.instanceId,
        name: h.name,
        before: null,
        after: null,
        outcome: 'not-started',
      }));
      const before = new Map<string, Record<string, string | null>>();
      const batch = Math.max(1, staging.batchSize);
      /** The versions a host runs before the deploy, one query per package (runs before the patch). */
      const readVersions = async (host: Host): Promise<Record<string, string | null>> => {
        const was: Record<string, string | null> = {};
        for (const pkg of input.packages) {
          was[pkg] = (await fleet().hostVersion({ host, packageName: pkg, format: input.distroSpec.format })).version;
        }
        return was;
      };
      /** One host of a batch, from the versions it ran before: upgrade, then the smoke step. */
      const upgradeAndCheck = async (host: Host, was: Record<string, string | null>): Promise<void> => {
        const report = reports[hosts.indexOf(host)];
        before.set(host.instanceId, was);
        report.before = was[input.packages[0]];
        for (const pkg of input.packages) {
          // The summary names what the activity does in the Web UI's event history.
          const r = await fleet().upgradeHost.executeWithOptions(
            { summary: `upgrade ${host.instanceId} (${host.name}) to ${pkg} ${input.version}` },
            [
              {
                host,
                format: input.distroSpec.format,
                packageName: pkg,
                version: input.version,
                repo: input.repo,
                logKey: `logs/${me}/${host.name}-${pkg}.log`,
                allowDowngrade: switching || input.force === true,
              },
            ],
          );
          report.logKey = r.logKey;
          report.after = r.after;
        }
        report.outcome = report.before === input.version ? 'unchanged' : 'upgraded';
        // Health check of the batch: the smoke step on the host just upgraded. A failure here
        // stops the rollout and rolls back like a failed install.
        const smoke = input.repository.steps.smoke;
        if (smoke) {
          const check = await fleet(smokeSeconds + 120).runOnHost({
            host,
            command: smoke,
            env: {
              ...stepEnvFor(input, input.distro),
              CONVEYOR_HOST: host.name,
              CONVEYOR_PACKAGE_VERSION: input.version,
            },
            logKey: `logs/${me}/${host.name}-smoke.log`,
            timeoutSeconds: input.repository.stepTimeoutSeconds,
          });
          if (check.exitCode !== 0) {
            throw ApplicationFailure.nonRetryable(
              `smoke exited with ${check.exitCode} on ${host.name}: ${check.tail.trim().split('\n').slice(-3).join(' | ')}`,
              FailureType.VerifyFailed,
            );
          }
        }
      };
      /** The versions and the refreshed package metadata of a batch's hosts (prepareHost), settled:
       * a failure is reported with its own batch, in order, never before the batch upgrading. */
      const prepareBatch = (group: Host[], refresh: boolean) =>
        Promise.allSettled(
          group.map((host) =>
            fleet().prepareHost.executeWithOptions(
              {
                summary: `prepare ${host.instanceId} (${host.name}) for ${input.packages.join(', ')} ${input.version}`,
              },
              [
                {
                  host,
                  format: input.distroSpec.format,
                  packages: input.packages,
                  version: input.version,
                  repo: input.repo,
                  logKey: `logs/${me}/${host.name}-prepare.log`,
                  refresh,
                },
              ],
            ),
          ),
        );
      // Runs recorded before the patch read each host's versions one package at a time, just before
      // its upgrade. Since: the next batch is prepared while this one upgrades and runs its smoke
      // step, so refreshing the metadata of later hosts (and apt rebuilding its cache from the new
      // lists) is off the critical path; upgradeHost still refreshes and verifies on its own. The
      // first batch has nothing to overlap with: its prepare reads the versions only, and its
      // upgrade refreshes (a full refresh first would be the same work twice on the critical path).
      // Only deb hosts refresh ahead: an rpm upgrade verifies into an empty dnf cache and downloads
      // the metadata again whatever was read before (scripts.ts), so an rpm refresh ahead is work
      // done twice (deploy/el9 0.6-0.8 s slower in the overhead benchmark); rpm hosts report versions.
      const refreshAhead = input.distroSpec.format === 'deb';
      const prepareAhead = patched('deploy-prepare-ahead');
      let prepared = prepareAhead ? prepareBatch(hosts.slice(0, batch), false) : undefined;
      for (let i = 0; i < hosts.length; i += batch) {
        const group = hosts.slice(i, i + batch);
        // The next batch's prepare, running while this batch upgrades: awaited before this stage
        // ends whatever happens, as it touches hosts and the lock must outlive it.
        let ahead: Promise<PromiseSettledResult<PrepareHostResult>[]> | undefined;
        let outcomes: PromiseSettledResult<void>[];
        if (prepared) {
          const mine = await prepared;
          const following = hosts.slice(i + batch, i + 2 * batch);
          // A batch with a host that could not be prepared fails: nothing to prepare ahead for.
          const failing = mine.some((p) => p.status === 'rejected');
          ahead = following.length > 0 && !failing ? prepareBatch(following, refreshAhead) : undefined;
          prepared = ahead;
          outcomes = await Promise.allSettled(
            group.map(async (host, j) => {
              const p = mine[j];
              if (p.status === 'rejected') throw p.reason;
              await upgradeAndCheck(host, p.value.versions);
            }),
          );
        } else {
          outcomes = await Promise.allSettled(
            group.map(async (host) => upgradeAndCheck(host, await readVersions(host))),
          );
        }
        const failed = outcomes.map((o, j) => ({ o, host: group[j] })).filter((x) => x.o.status === 'rejected');
        if (failed.length === 0) continue;
        for (const f of failed) {
          const report = reports[hosts.indexOf(f.host)];
          report.outcome = 'failed';
          const reason: unknown = (f.o as PromiseRejectedResult).reason;
          report.error = rootApplicationFailure(reason)?.message ?? messageOf(reason);
        }
        // Roll back this batch and every host upgraded before it, each to what it ran before. After an
        // abort the stage's scope is cancelled: the rollback must still run, so it gets a scope of its own.
        const touched = hosts.slice(0, i + group.length).filter((h) => before.has(h.instanceId));
        const rollingBack = () =>
          Promise.allSettled(
            touched.map(async (host) => {
              const report = reports[hosts.indexOf(host)];
              const was = before.get(host.instanceId) ?? {};
              try {
                for (const pkg of input.packages) {
                  const v = was[pkg];
                  if (v) {
                    await fleet().upgradeHost({
                      host,
                      format: input.distroSpec.format,
                      packageName: pkg,
                      version: v,
                      repo: input.repo,
                      logKey: `logs/${me}/${host.name}-${pkg}-rollback.log`,
                      allowDowngrade: true,
                    });
                  } else {
                    // Not installed before: take it off again. The name was checked by the package stage
                    // and is checked here too, as it reaches a host's shell.
                    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(pkg))
                      throw ApplicationFailure.nonRetryable(`unsafe package name ${pkg}`, FailureType.BadInput);
                    const removed = await fleet().runOnHost({
                      host,
                      command: input.distroSpec.format === 'deb' ? `apt-get remove -y ${pkg}` : `rpm -e ${pkg}`,
                      env: {},
                      logKey: `logs/${me}/${host.name}-${pkg}-rollback.log`,
                    });
                    if (removed.exitCode !== 0)
                      throw new Error(`removing ${pkg} exited with ${removed.exitCode}: ${removed.tail}`);
                  }
                }
                report.after = was[input.packages[0]] ?? null;
                if (report.outcome !== 'failed') report.outcome = 'rolled-back';
                else report.error = `${report.error ?? 'failed'}; rolled back to ${report.after ?? 'not installed'}`;
              } catch (err) {
                report.outcome = 'rollback-failed';
                report.error = `rollback failed: ${rootApplicationFailure(err)?.message ?? messageOf(err)}`;
              }
            }),
          );
        if (patched('rollback-non-cancellable')) {
          await CancellationScope.nonCancellable(rollingBack);
          // Prepared ahead, never upgraded: nothing was installed there, so no rollback, and
          // their reports stay 'not-started'. Whatever its outcome, it has ended before the lock
          // is released (a cancelled stage cancelled it too).
          if (ahead) await ahead;
          if (CancellationScope.current().consideredCancelled) {
            throw new CancelledFailure(`deploy cancelled; rolled back ${touched.length} host(s)`);
          }
        } else {
          await rollingBack();
          if (ahead) await ahead;
        }
        throw ApplicationFailure.create({
          type: FailureType.DeployFailed,
          message: `upgrade to ${input.version} failed on ${failed.map((f) => f.host.name).join(', ')}; rolled back ${touched.length} host(s)`,
          nonRetryable: true,
          details: [{ hosts: reports }],
        });
      }
      return {
        result: { status: 'deployed', hosts: reports, upgraded: hosts, ...(warning ? { warning } : {}) },
        record: {
          key: repoName,
          value: { sha: input.sha, version: input.version, branch: input.branch, at: new Date().toISOString() },
        },
      };
    },
  );
}
