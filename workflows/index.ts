// The workflow bundle's entry: every workflow type the orchestrator serves.
export { pipeline } from './pipeline';
export { testStage } from './stages/test';
