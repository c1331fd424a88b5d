// Task queues: the orchestrator serves workflows on `conveyor`; build hosts serve activities on
// `build-<distro>`, the way the 2015 chain found its build hosts through Consul.

export const ORCHESTRATOR_QUEUE = 'conveyor';

export function buildQueue(distro: string): string {
  return `build-${distro}`;
}
