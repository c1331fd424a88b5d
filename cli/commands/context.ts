// What the operator commands share: the config file named by the global --config, a client that is
// always closed, and the failures of a run lookup turned into sentences that say what was wrong.
import fs from 'node:fs';
import {
  ApplicationFailure,
  isGrpcDeadlineError,
  QueryNotRegisteredError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { Command } from 'commander';
import type { PipelineStatus } from '../../common/types';
import { loadConfig, resolveConfigPath, type ConveyorConfig, type Env } from '../../config/conveyor';
import { statusQuery, type OperatorAnswer } from '../../workflows/messages';
import { classifyQueryError } from '../../api/query-errors';
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
  // Whatever shape the error takes (deadline, CANCELLED, "no poller", the SDK's "Failed to query
  // Workflow"), a query nobody answered means no worker: say so, the caller shows the server's view.
  if (isGrpcDeadlineError(err) || classifyQueryError(err) === 'no-worker') {
    const within = timeoutMs ? ` within ${Math.round(timeoutMs / 1000)}s` : '';
    return new NoAnswerError(
      `no orchestrator worker answered for ${workflowId}${within} (task queue ${config.temporal.taskQueue}; ` +
        'see conveyor workers)',
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** `test`, `package/bookworm`: how operators and the retry signal name a stage. */
export function stageLabel(s: { name: string; distro?: string }): string {
  return s.distro ? `${s.name}/${s.distro}` : s.name;
}

/**
 * Sends an operator action as an Update and returns the run's definite answer. A refusal (the
 * validator's reason: nothing waits for it, no such stage) becomes the error message; a run that
 * has ended is told apart with its final status (`whenEnded`), read after the fact.
 */
export async function operatorUpdate<Req>(
  client: Client,
  config: ConveyorConfig,
  workflowId: string,
  update: UpdateDefinition<OperatorAnswer, [Req]>,
  request: Req,
  whenEnded: (status: PipelineStatus) => string,
  timeoutMs = QUERY_TIMEOUT_MS,
): Promise<OperatorAnswer> {
  try {
    return await client.withDeadline(Date.now() + timeoutMs, () =>
      client.workflow.getHandle(workflowId).executeUpdate(update, { args: [request] }),
    );
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      throw new Error(err.cause.message);
    }
    if (isGrpcDeadlineError(err)) throw explainRunError(err, config, workflowId, timeoutMs);
    // Not accepted for another reason: usually the run has ended (or it does not exist).
    const status = await queryStatus(client, config, workflowId);
    if (status.endedAt) throw new Error(whenEnded(status));
    throw err instanceof Error ? err : new Error(String(err));
  }
}
