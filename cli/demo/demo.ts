// `npm run demo`: the whole chain on the local stack. Starts the stack (detached, left running so
// the Web UI stays up) unless one runs, commits to the sample repository, sends the signed push
// webhook GitHub would send, follows the run with a live per-stage display, and exits 0 with the
// workflow ID and the Web UI link, or non-zero with the failing stage and its log tail.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findRepository, loadConfig, parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import type { PipelineStatus } from '../../common/types';
import type { DevConfig } from '../../config/temporal-dev';
import { connectClient } from '../../workers/temporal';
import { followRun, webUiLink } from '../follow';
import { devWebhookSecret, runningStack, type StackInfo } from '../local-stack/stack';
import { tailOf } from '../local-stack/services';
import { ROOT, tsxBin } from '../local-stack/tools';
import { pushPayload, sendWebhook } from '../webhook-client';
import { commitSample } from './sample-repo';

export const DEMO_REPOSITORY = 'demo/widget';

export interface DemoOptions {
  dev: DevConfig;
  configFile: string;
  /** Make the sample's unit test fail, to show a failed stage and its log tail. */
  failUnit?: boolean;
  out?: NodeJS.WriteStream;
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const say = (s: string) => out.write(s + '\n');
  const stack = runningStack(opts.dev) ?? (await startDetachedStack(opts, say));
  const config = loadConfig(stack.configFile);
  if (path.resolve(stack.configFile) !== path.resolve(opts.configFile)) {
    say(`note: the running stack serves ${stack.configFile}, not ${opts.configFile}`);
  }
  const repo = findRepository(config, DEMO_REPOSITORY);
  if (!repo) {
    throw new Error(
      `the running stack's config ${stack.configFile} has no repository ${DEMO_REPOSITORY}; stop it and run the demo again`,
    );
  }
  const commit = await commitSample(repo.cloneUrl, path.join(opts.dev.dataDir, 'demo', 'work'), {
    message: `demo: change at ${new Date().toISOString()}`,
    mutate: opts.failUnit ? (dir) => fs.writeFileSync(path.join(dir, 'FAIL_UNIT'), 'yes\n') : undefined,
  });
  say(`pushed ${commit.sha.slice(0, 12)} to ${repo.cloneUrl} (${commit.branch})`);
  const secret = devWebhookSecret(opts.dev, config);
  const delivery = await sendWebhook(
    stack.apiUrl,
    secret,
    'push',
    pushPayload({
      repository: repo.name,
      branch: commit.branch,
      sha: commit.sha,
      before: commit.before,
      message: commit.message,
    }),
  );
  if (!delivery.body.workflowId) {
    throw new Error(`the webhook API answered ${delivery.status}: ${JSON.stringify(delivery.body)}`);
  }
  const workflowId = delivery.body.workflowId;
  say(`webhook answered ${delivery.status} (${delivery.body.status}): ${workflowId}\n`);

  const clientConfig: ConveyorConfig = {
    ...config,
    temporal: { ...config.temporal, address: stack.temporalAddress, namespace: stack.namespace },
  };
  const client = await connectClient(clientConfig, {});
  try {
    const final = await followRun(client, workflowId, { out, stopWhenAwaitingOperator: true });
    const link = webUiLink(stack.uiUrl, stack.namespace, workflowId);
    say('');
    if (final.status === 'succeeded' || final.status === 'superseded') {
      say(`run succeeded: ${workflowId}${final.version ? ` (${final.version})` : ''}`);
      for (const g of final.hosts ?? []) {
        for (const h of g.hosts)
          say(`  ${g.distro} ${h.name}: ${h.before ?? '(not installed)'} → ${h.after ?? '?'} (${h.outcome})`);
      }
      for (const line of installHints(config, stack, final)) say(line);
      say(`Web UI: ${link}`);
      say(`the local stack keeps running (logs in ${stack.logDir}); stop it with: npm run conveyor -- dev --stop`);
      return 0;
    }
    const failed = final.stages.find((s) => s.state === 'failed');
    say(`run ${final.status}: ${workflowId}`);
    if (failed) {
      say(`failing stage: ${failed.name}${failed.distro ? `/${failed.distro}` : ''}: ${failed.error ?? ''}`);
      if (failed.tail) say(`log tail:\n${failed.tail}`);
      if (failed.logKeys.length) say(`full logs: ${failed.logKeys.join(', ')} in the artifacts bucket`);
    } else if (final.failure) say(final.failure);
    if (final.status === 'awaiting-operator') {
      say('the run waits for an operator:');
      say(`  npm run conveyor -- retry ${workflowId}            # re-run the failed stage`);
      say(`  npm run conveyor -- abort ${workflowId} --reason "…"  # end the run`);
    }
    say(`Web UI: ${link}`);
    return 1;
  } finally {
    await client.connection.close();
  }
}

/** The lines a user would type to install from the staging repositories, and the docs URL. */
export function installHints(config: ConveyorConfig, stack: StackInfo, status: PipelineStatus): string[] {
  if (!status.published) return [];
  const bucketUrl = `${stack.awsEndpoint}/${parseS3Url(config.storage[status.published.environment as 'staging']).bucket}`;
  const keyUrl = `${bucketUrl}/keys/conveyor.asc`;
  const name = status.repository.split('/')[1];
  const lines = ['', `install ${name} ${status.version} from staging ${status.published.channel}:`];
  for (const r of status.published.repositories) {
    const spec = config.distros[r.distro];
    if (spec?.format === 'deb') {
      lines.push(`  # ${r.distro} (apt)`);
      lines.push(`  curl -fsSL ${keyUrl} -o /etc/apt/keyrings/conveyor.asc`);
      lines.push(
        `  echo 'deb [signed-by=/etc/apt/keyrings/conveyor.asc] ${bucketUrl}/${r.path} ${spec.codename}-${status.published.channel} main' > /etc/apt/sources.list.d/conveyor.list`,
      );
      lines.push(`  apt-get update && apt-get install ${name}=${status.version}`);
    } else if (spec) {
      lines.push(`  # ${r.distro} (dnf)`);
      lines.push(
        `  printf '[conveyor]\\nname=conveyor\\nbaseurl=${bucketUrl}/${r.path}\\ngpgcheck=1\\nrepo_gpgcheck=1\\ngpgkey=${keyUrl}\\n' > /etc/yum.repos.d/conveyor.repo`,
      );
      lines.push(`  dnf install ${name}-${status.version}`);
    }
  }
  if (status.published.docs) lines.push(`docs: ${bucketUrl}/${status.published.docs}`);
  return lines;
}

async function startDetachedStack(opts: DemoOptions, say: (s: string) => void): Promise<StackInfo> {
  const logDir = path.join(opts.dev.dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, 'stack.log');
  say(`starting the local stack in the background (log: ${logFile}) ...`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(
    tsxBin(),
    [path.join(ROOT, 'cli', 'main.ts'), 'dev', '--config', opts.configFile, '--dev-config', opts.dev.file],
    { cwd: ROOT, detached: true, stdio: ['ignore', fd, fd], env: process.env },
  );
  fs.closeSync(fd);
  child.unref();
  const t0 = Date.now();
  let info: StackInfo | undefined;
  while (!(info = runningStack(opts.dev))) {
    if (child.exitCode !== null)
      throw new Error(`the local stack exited with code ${child.exitCode}:\n${tailOf(logFile)}`);
    if (Date.now() - t0 > 600000) throw new Error(`the local stack did not come up in 10 minutes:\n${tailOf(logFile)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`local stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s: Web UI ${info.uiUrl}, API ${info.apiUrl}`);
  return info;
}
