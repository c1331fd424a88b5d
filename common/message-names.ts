// Names of workflow types and messages that activities address by name: activities never import
// workflow code, and workflows/messages.ts defines the typed messages from these same names.
export const WorkflowTypes = {
  pipeline: 'pipeline',
  branchState: 'branchState',
  repositoryLock: 'repositoryLock',
} as const;

export const MessageNames = {
  allocateBuild: 'allocateBuild',
  recordGreen: 'recordGreen',
  recordRelease: 'recordRelease',
  acquireLock: 'acquireLock',
  releaseLock: 'releaseLock',
  lockGranted: 'lockGranted',
  renewLock: 'renewLock',
  withdrawLock: 'withdrawLock',
  lockState: 'lockState',
  stageNote: 'stageNote',
  stepStarted: 'stepStarted',
  hostExec: 'hostExec',
  /** The branch-state entity's query. */
  branchState: 'state',
} as const;
