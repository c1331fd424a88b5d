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
import { createFleetActivities, defaultBaseDir, ensureLocalHost, resetLocalHost } from '../../activities/fleet';
import { runChecked } from '../../activities/exec/process';
import { createAwsClients } from '../../activities/storage/s3';
import { approveSignal } from '../../workflows/messages';
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
  /** Only the main-branch run (no release, approval and production install). */
  skipRelease?: boolean;
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
  const work = path.join(opts.dev.dataDir, 'demo', 'work');
  const secret = devWebhookSecret(opts.dev, config);
  const clientConfig: ConveyorConfig = {
    ...config,
    temporal: { ...config.temporal, address: stack.temporalAddress, namespace: stack.namespace },
  };
  const client = await connectClient(clientConfig, {});
  try {
    /** Commits to `branch`, sends the signed push webhook GitHub would send, returns the run's ID. */
    const push = async (branch: string, message: string, mutate?: (dir: string) => void): Promise<string> => {
      const commit = await commitSample(repo.cloneUrl, work, { branch, message, mutate });
      say(`pushed ${commit.sha.slice(0, 12)} to ${repo.cloneUrl} (${commit.branch})`);
      const delivery = await sendWebhook(
        stack.apiUrl,
        secret,
        'push',
        pushPayload({ repository: repo.name, branch: commit.branch, sha: commit.sha, before: commit.before, message }),
      );
      if (!delivery.body.workflowId) {
        throw new Error(`the webhook API answered ${delivery.status}: ${JSON.stringify(delivery.body)}`);
      }
      say(`webhook answered ${delivery.status} (${delivery.body.status}): ${delivery.body.workflowId}\n`);
      return delivery.body.workflowId;
    };

    // 1. A change on main: tested, packaged, published, deployed, verified, promoted to production unstable.
    const mainId = await push(
      'main',
      `demo: change at ${new Date().toISOString()}`,
      opts.failUnit ? (dir) => fs.writeFileSync(path.join(dir, 'FAIL_UNIT'), 'yes\n') : undefined,
    );
    const main = await followRun(client, mainId, { out, stopWhenAwaitingOperator: true });
    if (!report(main, mainId)) return 1;

    // 2. A release: a commit on the release branch v<major>.<minor>, at the next version not yet tagged.
    const releaseRule = repo.branches.find((b) => b.release);
    if (!releaseRule || opts.skipRelease) return done(mainId);
    const next = await nextReleaseVersion(repo.cloneUrl, path.join(work, 'VERSION'));
    const branch = `v${next.split('.').slice(0, 2).join('.')}`;
    say(`\nrelease ${next} on ${branch}:`);
    const relId = await push(branch, `demo: release ${next}`, (dir) =>
      fs.writeFileSync(path.join(dir, 'VERSION'), `${next}\n`),
    );
    const waiting = await followRun(client, relId, {
      out,
      stopWhenAwaitingOperator: true,
      stopWhenAwaitingApproval: true,
    });
    if (waiting.status === 'awaiting-approval') {
      say(
        `\n${relId} waits for approval (tagged ${waiting.release?.tag}, next patch branch ${waiting.release?.nextBranch}).`,
      );
      say(`approving it as the demo's release manager, as you would with:`);
      say(`  npm run conveyor -- approve ${relId}`);
      say(`  temporal workflow signal --workflow-id ${relId} --name approve --input '{"by":"you"}'`);
      await client.workflow
        .getHandle(relId)
        .signal(approveSignal, { by: 'conveyor-demo', comment: 'approved by the demo' });
    }
    const released = await followRun(client, relId, { out, stopWhenAwaitingOperator: true });
    if (!report(released, relId)) return 1;

    // 3. Install the released package from the production repository on a clean host and run it.
    const installed = await installFromProduction(config, stack, released);
    say(`\ninstalled from production ${released.promoted?.channel}: ${installed}`);
    return done(relId);
  } finally {
    await client.connection.close();
  }

  function done(lastId: string): number {
    say(`\nWeb UI: ${webUiLink(stack.uiUrl, stack.namespace, lastId)}`);
    say(`follow or inspect a run: npm run conveyor -- watch ${lastId}   |   npm run conveyor -- status ${lastId}`);
    say(`the local stack keeps running (logs in ${stack.logDir}); stop it with: npm run conveyor -- dev --stop`);
    return 0;
  }

  /** Prints the outcome of a run; true when it succeeded. */
  function report(final: PipelineStatus, workflowId: string): boolean {
    const link = webUiLink(stack.uiUrl, stack.namespace, workflowId);
    say('');
    if (final.status === 'succeeded') {
      say(`run succeeded: ${workflowId}${final.version ? ` (${final.version})` : ''}`);
      for (const g of final.hosts ?? []) {
        for (const h of g.hosts)
          say(`  ${g.distro} ${h.name}: ${h.before ?? '(not installed)'} → ${h.after ?? '?'} (${h.outcome})`);
      }
      for (const line of installHints(config, stack, final)) say(line);
      return true;
    }
    const failed = final.stages.find((st) => st.state === 'failed');
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
    return false;
  }
}

/** The lowest `<major>.<minor>.<patch>` at or after VERSION whose tag `v…` does not exist yet. */
async function nextReleaseVersion(cloneUrl: string, versionFile: string): Promise<string> {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(fs.readFileSync(versionFile, 'utf8').trim());
  if (!m) throw new Error(`${versionFile} holds no <major>.<minor>.<patch> version`);
  const tags = new Set(
    (await runChecked('git', ['ls-remote', '--tags', cloneUrl]))
      .split('\n')
      .map((l) => l.split('refs/tags/')[1])
      .filter(Boolean),
  );
  let patch = Number(m[3]);
  while (tags.has(`v${m[1]}.${m[2]}.${patch}`)) patch++;
  return `${m[1]}.${m[2]}.${patch}`;
}

/**
 * Installs the promoted package from the production repository into a clean local Debian host
 * (made from the cached base root) with apt-get, exactly as a production host would, and runs it.
 */
async function installFromProduction(
  config: ConveyorConfig,
  stack: StackInfo,
  status: PipelineStatus,
): Promise<string> {
  const promoted = status.promoted;
  const deb = promoted?.repositories.find((r) => config.distros[r.distro]?.format === 'deb');
  if (!promoted || !deb || !status.version || !config.fleet?.hostsDir)
    return 'skipped (no deb distro or no local hosts)';
  const root = path.join(config.fleet.hostsDir, 'production-check');
  await resetLocalHost(root);
  await ensureLocalHost(root, 'deb', { baseDir: defaultBaseDir() });
  const stackConfig: ConveyorConfig = { ...config, aws: { ...config.aws, endpoint: stack.awsEndpoint } };
  const aws = createAwsClients(stackConfig, {});
  const artifacts = parseS3Url(config.storage.artifacts);
  const fleet = createFleetActivities({
    ec2: aws.ec2,
    ssm: aws.ssm,
    s3: aws.s3,
    artifactsBucket: artifacts.bucket,
    artifactsPrefix: artifacts.prefix,
    hostsDir: config.fleet.hostsDir,
    baseDir: defaultBaseDir(),
  });
  const host = {
    instanceId: 'production-check',
    name: 'production-check',
    distro: deb.distro,
    executor: 'local' as const,
    root,
  };
  const bucketUrl = `${stack.awsEndpoint}/${parseS3Url(config.storage.production).bucket}`;
  const name = status.repository.split('/')[1];
  const up = await fleet.upgradeHost({
    host,
    format: 'deb',
    packageName: name,
    version: status.version,
    repo: { url: `${bucketUrl}/${deb.path}`, suite: deb.suite, keyUrl: `${bucketUrl}/keys/conveyor.asc` },
    logKey: `logs/demo/production-check.log`,
  });
  const run = await fleet.runOnHost({
    host,
    command: `${name} --version`,
    env: {},
    logKey: 'logs/demo/production-check-run.log',
  });
  return `${name} ${up.after} via apt-get; \`${name} --version\` printed: ${run.tail.trim()}`;
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
