// The workflow bundle's entry: every workflow type the orchestrator serves.
export { pipeline } from './pipeline';
export { branchState } from './branch-state';
export { repositoryLock } from './repository-lock';
export { testStage } from './stages/test';
export { packageStage, docsStage } from './stages/package';
export { publishStage } from './stages/publish';
export { deployStage } from './stages/deploy';
export { verifyStage } from './stages/verify';
export { releaseStage } from './stages/release';
export { promoteStage } from './stages/promote';
export { resignReleases } from './resign-releases';
export { repositoryRewrite } from './repository-rewrite';
export { chatNotifier } from './chat-notifier';
export { auditRecord } from './audit-record';
