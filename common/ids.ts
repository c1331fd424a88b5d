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
export function repositoryRewriteId(environment: string, channel: string, distro: string, request: string): string {
  return `repo-rewrite/${environment}/${channel}/${distro}/${request}`;
}
