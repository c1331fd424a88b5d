// Workflow ID builders: the names the outside world sees (shared/DESIGN.md, "Names").
// Every ID is built here so a second delivery of the same push lands on the same workflow.

export type StageName = 'test' | 'package' | 'publish' | 'deploy' | 'verify' | 'release' | 'promote';

export function pipelineId(repository: string, branch: string, sha: string): string {
  return `pipeline/${repository}/${branch}/${sha}`;
}

/** `<parent id>/<stage>[/<distro>][#<attempt>]`; attempt 1 carries no suffix. */
export function stageId(parentId: string, stage: StageName, distro?: string, attempt = 1): string {
  const base = distro ? `${parentId}/${stage}/${distro}` : `${parentId}/${stage}`;
  return attempt > 1 ? `${base}#${attempt}` : base;
}

export function branchStateId(repository: string, branch: string): string {
  return `branch-state/${repository}/${branch}`;
}

/** The lock serialising publishes to one channel of a bucket (the bucket, not the environment's
 * name: two installations sharing a namespace must not share a lock for different buckets). */
export function repositoryLockId(bucket: string, channel: string): string {
  return `repo-lock/${bucket}/${channel}`;
}

/** The lock serialising deploys to the hosts of one distro in an environment. */
export function deployLockId(environment: string, distro: string): string {
  return `deploy-lock/${environment}/${distro}`;
}

/** One `conveyor repo rollback|remove` request: `repo-rewrite/<environment>/<channel>/<distro>/<request>`
 * (the request a unique word chosen by the CLI, so a second request is a second change). */
/** `conveyor keys rotate [--finish]`: one re-sign of every channel per request. */
export function keysRotateId(request: string): string {
  return `keys-rotate/${request}`;
}

export function repositoryRewriteId(environment: string, channel: string, distro: string, request: string): string {
  return `repo-rewrite/${environment}/${channel}/${distro}/${request}`;
}

const STAGE_NAMES = 'test|package|publish|deploy|verify|release|promote';
/** A stage child's ID (also a rerun's `…#rerun-<n>`): the pipeline ID ends in the 40-hex commit,
 * so the stage and distro after it are found even when the branch has slashes. */
const STAGE_ID = new RegExp(`^(pipeline/.+/[0-9a-f]{40})/(${STAGE_NAMES})(?:/([^#/]+))?(?:#.*)?$`);

/** The stage (and distro) a workflow ID names, for logs and metrics; undefined for other IDs. */
export function parseStageId(id: string): { pipelineId: string; stage: StageName; distro?: string } | undefined {
  const m = STAGE_ID.exec(id);
  if (!m) return undefined;
  return { pipelineId: m[1], stage: m[2] as StageName, ...(m[3] ? { distro: m[3] } : {}) };
}
