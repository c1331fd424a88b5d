// What the operator commands share: the config file named by the global --config, a client that is
// always closed, and the failures of a run lookup turned into sentences that say what was wrong.
import fs from 'node:fs';
import { isGrpcDeadlineError, QueryNotRegisteredError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { PipelineStatus } from '../../common/types';
import { loadConfig, resolveConfigPath, type ConveyorConfig, type Env } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import { connectClient } from '../../workers/temporal';
import { ROOT } from '../local-stack/tools';

/**
 * --config, else CONVEYOR_CONFIG, else conveyor.yml / conveyor.dev.yml where the operator stands,
 * else in the checkout. `npm run` moves to the package root; INIT_CWD is where the command was typed.
 */
export function configPath(cmd: Command, env: Env = process.env): string {
  const flag = cmd.optsWithGlobals<{ config?: string }>().config;
  const cwd = env.INIT_CWD ?? process.cwd();
  if (flag ?? env.CONVEYOR_CONFIG) return resolveConfigPath(flag, env, cwd);
  const here = resolveConfigPath(undefined, env, cwd);
  return fs.existsSync(here) ? here : resolveConfigPath(undefined, env, ROOT);
}

export function commandConfig(cmd: Command): ConveyorConfig {
  return loadConfig(configPath(cmd));
}

/** Connects (an unreachable server is named with its address), runs `fn`, and always closes. */
export async function withClient<T>(config: ConveyorConfig, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectClient(config);
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

/** How long a status query may wait: Temporal holds a query until a worker answers it. */
export const QUERY_TIMEOUT_MS = 10000;

/** The pipeline's `status` query, with an unknown ID, a non-pipeline workflow and a silent worker told apart. */
export async function queryStatus(
  client: Client,
  config: ConveyorConfig,
  workflowId: string,
  timeoutMs = QUERY_TIMEOUT_MS,
): Promise<PipelineStatus> {
  try {
    return await client.withDeadline(Date.now() + timeoutMs, () =>
      client.workflow.getHandle(workflowId).query(statusQuery),
    );
  } catch (err) {
    throw explainRunError(err, config, workflowId, timeoutMs);
  }
}

/** Temporal holds a query until a worker answers it: this says none did in time. */
export class NoAnswerError extends Error {}

export function explainRunError(err: unknown, config: ConveyorConfig, workflowId: string, timeoutMs?: number): Error {
  if (err instanceof WorkflowNotFoundError) {
    return new Error(`unknown workflow: ${workflowId} (namespace ${config.temporal.namespace})`);
  }
  if (err instanceof QueryNotRegisteredError) {
    return new Error(`${workflowId} is not a pipeline run: it answers no status query`);
  }
  if (isGrpcDeadlineError(err)) {
    const within = timeoutMs ? ` within ${Math.round(timeoutMs / 1000)}s` : '';
    return new NoAnswerError(
      `no answer from ${workflowId}${within}: is an orchestrator worker polling task queue ` +
        `${config.temporal.taskQueue}? (see conveyor workers)`,
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** `test`, `package/bookworm`: how operators and the retry signal name a stage. */
export function stageLabel(s: { name: string; distro?: string }): string {
  return s.distro ? `${s.name}/${s.distro}` : s.name;
}
