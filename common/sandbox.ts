// Sandbox settings of a repository: the defaults conveyor.yml fills in, and what they mean for one
// step. Pure, so config, workflows and activities agree on them.
import type { SandboxedStep, SandboxSpec } from './types';

export const SANDBOXED_STEPS: readonly SandboxedStep[] = ['unit', 'integration', 'package', 'docs', 'e2e'];

/** Enough for a compiler or a test suite with a browser; small enough that several steps fit a builder. */
export const DEFAULT_SANDBOX: SandboxSpec = {
  mode: 'bwrap',
  network: false,
  limits: { memoryMb: 4096, pids: 512, diskMb: 10240 },
};

/** The settings a step runs with: the repository's, or the defaults for runs whose input has none
 * (started before sandboxing existed): never less isolation than configured. */
export function sandboxOf(spec: SandboxSpec | undefined): SandboxSpec {
  if (!spec) return DEFAULT_SANDBOX;
  return { ...DEFAULT_SANDBOX, ...spec, limits: { ...DEFAULT_SANDBOX.limits, ...spec.limits } };
}

export function stepHasNetwork(spec: SandboxSpec, step: string): boolean {
  return Array.isArray(spec.network) ? (spec.network as string[]).includes(step) : spec.network;
}
