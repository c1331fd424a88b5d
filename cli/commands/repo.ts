// `conveyor repo list|show|rollback|remove`: the published repositories' generations as snapshots
// (activities/repository/rewrite-repository.ts). list and show read the environments' buckets
// directly (the state and its generation snapshots); rollback and remove change a repository, so
// they run as the repositoryRewrite workflow on the orchestrator's queue, which takes the same lock
// as a publish to that bucket and channel and publishes the new generation like a publish does.
import crypto from 'node:crypto';
import os from 'node:os';
import { WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { aptFormat, createRepoStore, listGenerations, readSnapshot, yumFormat } from '../../activities/repository';
import type { RewriteRepositoryInput } from '../../activities/repository';
import type { GenerationChange, RepositoryState } from '../../activities/repository/repository-state';
import { isHead, loadState, parseStored } from '../../activities/repository/state-shards';
import { createAwsClients } from '../../activities/storage/s3';
import { recordAction } from './audit';
import { repositoryRewriteId } from '../../common/ids';
import type { DistroSpec } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import type { repositoryRewrite } from '../../workflows/repository-rewrite';
import { commandConfig, withClient } from './context';

type Environment = 'staging' | 'production';
const ENVIRONMENTS: Environment[] = ['staging', 'production'];
const CHANNEL = /^[a-z0-9][a-z0-9-]*$/;
const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+~^:-]{0,127}$/;

/** One repository of a channel: an apt suite (shared by the deb distros of one codename) or a yum
 * repository (one per rpm distro). */
interface ChannelRepo {
  environment: Environment;
  channel: string;
  distro: string;
  distroSpec: DistroSpec;
  /** `apt bookworm-unstable` or `yum/el9/unstable`. */
  label: string;
  stateKey: string;
  format: ReturnType<typeof aptFormat>;
}

function storeFor(config: ConveyorConfig, environment: Environment) {
  const { s3 } = createAwsClients(config);
  const { bucket, prefix } = parseS3Url(config.storage[environment]);
  return { store: createRepoStore(s3, bucket, prefix), bucket };
}

function repoOf(environment: Environment, channel: string, distro: string, distroSpec: DistroSpec): ChannelRepo {
  const target = { environment, channel, distro, distroSpec };
  const format = distroSpec.format === 'deb' ? aptFormat(target) : yumFormat(target);
  const label = format.suite ? `apt ${format.suite}` : format.repoUrlPath;
  return { ...target, label, stateKey: format.stateKey, format };
}

/** The channels that have a state in the environment's bucket, per repository of the config's distros. */
async function discover(config: ConveyorConfig, environment: Environment): Promise<ChannelRepo[]> {
  const { store } = storeFor(config, environment);
  const keys = [...(await store.list('conveyor-state/')).keys()].filter(
    (k) => k.endsWith('.json') && !k.includes('.generations/') && !k.includes('.shards/'),
  );
  const channels = new Set<string>();
  for (const k of keys) {
    const yum = /^conveyor-state\/yum\/[^/]+\/([^/]+)\/state\.json$/.exec(k);
    if (yum) channels.add(yum[1]);
    const apt = /^conveyor-state\/apt\/([^/]+)\.json$/.exec(k);
    if (apt) {
      for (const [distro, spec] of Object.entries(config.distros)) {
        const codename = spec.codename ?? distro;
        if (spec.format === 'deb' && apt[1].startsWith(`${codename}-`)) channels.add(apt[1].slice(codename.length + 1));
      }
    }
  }
  const found = new Map<string, ChannelRepo>();
  for (const channel of [...channels].sort()) {
    for (const [distro, spec] of Object.entries(config.distros)) {
      const r = repoOf(environment, channel, distro, spec);
      if (keys.includes(r.stateKey) && !found.has(r.stateKey)) found.set(r.stateKey, r);
    }
  }
  return [...found.values()];
}

async function channelRepos(
  config: ConveyorConfig,
  environment: string,
  channel: string,
  distro?: string,
): Promise<ChannelRepo[]> {
  if (!ENVIRONMENTS.includes(environment as Environment)) {
    throw new Error(`unknown environment ${JSON.stringify(environment)}: staging or production`);
  }
  if (!CHANNEL.test(channel)) throw new Error(`bad channel ${JSON.stringify(channel)}`);
  if (distro !== undefined && !config.distros[distro]) {
    throw new Error(`unknown distro ${JSON.stringify(distro)} (distros: ${Object.keys(config.distros).join(', ')})`);
  }
  const all = (await discover(config, environment as Environment)).filter((r) => r.channel === channel);
  const repos = distro === undefined ? all : all.filter((r) => r.distro === distro);
  if (repos.length === 0) {
    throw new Error(
      `${environment} has no published ${distro ? `${distro} repository in channel` : 'channel'} ${channel}` +
        ' (conveyor repo list shows what there is)',
    );
  }
  return repos;
}

async function readLive(config: ConveyorConfig, r: ChannelRepo): Promise<RepositoryState> {
  const { store } = storeFor(config, r.environment);
  const state = await loadState(store, r.format);
  if (!state) throw new Error(`${store.url(r.stateKey)} is missing`);
  return state;
}

/** The live generation and its package count, from the head alone. */
async function readLiveSummary(config: ConveyorConfig, r: ChannelRepo): Promise<{ generation: number; count: number }> {
  const { store } = storeFor(config, r.environment);
  const bytes = await store.get(r.stateKey);
  if (!bytes) throw new Error(`${store.url(r.stateKey)} is missing`);
  const stored = parseStored(bytes, store.url(r.stateKey), r.format.format);
  return { generation: stored.generation, count: isHead(stored) ? stored.count : stored.packages.length };
}

function changeText(c: GenerationChange): string {
  const by = 'by' in c && c.by ? ` by ${c.by}` : '';
  if (c.kind === 'publish') return `publish by ${c.repository}`;
  if (c.kind === 'rollback') return `rollback to ${c.to}${by}`;
  return `remove ${c.name} ${c.version}${by}: ${c.reason}`;
}

function versionsOf(packages: { name: string; version: string; arch: string }[]): string[] {
  return packages.map((p) => `${p.name} ${p.version} ${p.arch}`);
}

function listCommand(): Command {
  return new Command('list')
    .description('environments, channels, suites and their generations (time, package count, what made each)')
    .option('--env <environment>', 'staging or production (default: both)')
    .option('--json', 'print JSON')
    .action(async (opts: { env?: string; json?: boolean }, cmd: Command) => {
      const config = commandConfig(cmd);
      const envs = opts.env ? [opts.env as Environment] : ENVIRONMENTS;
      if (envs.some((e) => !ENVIRONMENTS.includes(e))) throw new Error(`unknown environment ${opts.env}`);
      const out: unknown[] = [];
      for (const environment of envs) {
        const { store } = storeFor(config, environment);
        const repos = await discover(config, environment);
        if (!opts.json) process.stdout.write(`${environment}:${repos.length === 0 ? ' nothing published' : ''}\n`);
        for (const r of repos) {
          const live = await readLiveSummary(config, r);
          const generations = [];
          for (const n of await listGenerations(store, r.format)) {
            const s = await readSnapshot(store, r.format, n, undefined, { packages: false });
            if (s) {
              generations.push({
                generation: n,
                publishedAt: s.publishedAt,
                packages: s.count ?? s.packages.length,
                change: s.change,
                live: n === live.generation,
              });
            }
          }
          out.push({
            environment,
            channel: r.channel,
            distro: r.distro,
            repository: r.label,
            generation: live.generation,
            generations,
          });
          if (opts.json) continue;
          process.stdout.write(
            `  ${r.channel} (${r.label}, distro ${r.distro}): live generation ${live.generation}, ` +
              `${live.count} package${live.count === 1 ? '' : 's'}\n`,
          );
          for (const g of generations) {
            process.stdout.write(
              `    ${g.live ? '*' : ' '} ${String(g.generation).padStart(4)}  ${g.publishedAt}  ` +
                `${String(g.packages).padStart(4)} packages  ${changeText(g.change)}\n`,
            );
          }
        }
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
}

function showCommand(): Command {
  return new Command('show')
    .description("the packages and versions of a channel's repositories (live, or --generation N)")
    .argument('<environment>', 'staging or production')
    .argument('<channel>', 'e.g. unstable, stable')
    .option('--generation <n>', 'a generation from `conveyor repo list` instead of the live one', (v) => Number(v))
    .option('--distro <distro>', 'only the repository of this distro')
    .option('--json', 'print JSON')
    .action(
      async (
        environment: string,
        channel: string,
        opts: { generation?: number; distro?: string; json?: boolean },
        cmd: Command,
      ) => {
        const config = commandConfig(cmd);
        if (opts.generation !== undefined && (!Number.isInteger(opts.generation) || opts.generation < 1)) {
          throw new Error('--generation takes a generation number (conveyor repo list)');
        }
        const out: unknown[] = [];
        for (const r of await channelRepos(config, environment, channel, opts.distro)) {
          const { store } = storeFor(config, r.environment);
          const live = await readLive(config, r);
          const wanted = opts.generation ?? live.generation;
          const snap = opts.generation === undefined ? undefined : await readSnapshot(store, r.format, wanted);
          if (opts.generation !== undefined && !snap) {
            throw new Error(`${r.label} (${environment}) has no snapshot of generation ${wanted}`);
          }
          const packages = versionsOf(snap ? snap.packages : live.packages);
          const yanked = (live.yanked ?? []).map((y) => ({ ...y }));
          out.push({
            environment,
            channel,
            distro: r.distro,
            repository: r.label,
            generation: wanted,
            packages,
            yanked,
          });
          if (opts.json) continue;
          process.stdout.write(
            `${environment} ${channel} ${r.label} (distro ${r.distro}), generation ${wanted}` +
              `${wanted === live.generation ? ' (live)' : ''}:\n`,
          );
          for (const p of packages) process.stdout.write(`  ${p}\n`);
          for (const y of yanked) {
            process.stdout.write(
              `  removed: ${y.name} ${y.version} at ${y.at}${y.by ? ` by ${y.by}` : ''}: ${y.reason}\n`,
            );
          }
        }
        if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      },
    );
}

async function runRewrite(
  config: ConveyorConfig,
  r: ChannelRepo,
  action: RewriteRepositoryInput['action'],
  reason?: string,
): Promise<void> {
  const { bucket } = storeFor(config, r.environment);
  const by = process.env.USER ?? os.userInfo().username;
  const id = repositoryRewriteId(r.environment, r.channel, r.distro, crypto.randomBytes(6).toString('hex'));
  const result = await withClient(config, async (client) => {
    const handle = await client.workflow.start<typeof repositoryRewrite>('repositoryRewrite', {
      workflowId: id,
      taskQueue: config.temporal.taskQueue,
      args: [
        {
          environment: r.environment,
          channel: r.channel,
          distro: r.distro,
          distroSpec: r.distroSpec,
          bucket,
          action,
          by,
        },
      ],
    });
    await recordAction(client, config, {
      action: action.kind,
      by,
      target: `repo ${r.environment}/${r.channel}/${r.distro}`,
      workflowId: id,
      ...(action.kind === 'remove'
        ? { why: action.reason, detail: `${action.name} ${action.version}` }
        : { ...(reason ? { why: reason } : {}), detail: `to generation ${action.to}` }),
    });
    return handle.result().catch((err: unknown) => {
      // The workflow's failure wraps the activity's, which says what was wrong.
      let cause: unknown = err;
      while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
      if (err instanceof WorkflowFailedError && cause instanceof Error) {
        throw new Error(`${r.label} (${r.environment} ${r.channel}): ${cause.message} (workflow ${id})`);
      }
      throw err;
    });
  });
  process.stdout.write(
    `${r.environment} ${r.channel} ${r.label}: generation ${result.previousGeneration} → ${result.generation}` +
      `${result.changed ? '' : ' (nothing changed)'}, ${result.packages} packages (workflow ${id})\n`,
  );
  for (const p of result.removed) process.stdout.write(`  - ${p}\n`);
  for (const p of result.added) process.stdout.write(`  + ${p}\n`);
  if (result.restored.length) process.stdout.write(`  restored from artifacts: ${result.restored.join(', ')}\n`);
}

function rollbackCommand(): Command {
  return new Command('rollback')
    .description(
      'publish an earlier generation again, as a new generation: atomically like a publish, under the same lock',
    )
    .argument('<environment>', 'staging or production')
    .argument('<channel>', 'e.g. unstable, stable')
    .requiredOption('--to <n>', 'the generation to go back to (conveyor repo list)', (v) => Number(v))
    .option(
      '--distro <distro>',
      'which repository of the channel (needed when it has several: each has its own generations)',
    )
    .option('--reason <text>', 'why (recorded in the audit trail: conveyor audit)')
    .action(
      async (
        environment: string,
        channel: string,
        opts: { to: number; distro?: string; reason?: string },
        cmd: Command,
      ) => {
        const config = commandConfig(cmd);
        if (!Number.isInteger(opts.to) || opts.to < 1)
          throw new Error('--to takes a generation number (conveyor repo list)');
        const repos = await channelRepos(config, environment, channel, opts.distro);
        if (repos.length > 1) {
          throw new Error(
            `${environment} ${channel} has ${repos.length} repositories, each with its own generations: ` +
              `name one with --distro (${repos.map((r) => `${r.distro}: ${r.label}`).join(', ')})`,
          );
        }
        await runRewrite(config, repos[0], { kind: 'rollback', to: opts.to }, opts.reason);
      },
    );
}

function removeCommand(): Command {
  return new Command('remove')
    .description(
      'take one version of a package out of a channel (every repository of the channel that has it), ' +
        'as a new generation; the reason is recorded in the repository state',
    )
    .argument('<environment>', 'staging or production')
    .argument('<channel>', 'e.g. unstable, stable')
    .argument('<package>', 'the package name')
    .argument('<version>', 'the exact version, <version>-<build>')
    .requiredOption('--reason <text>', 'why (recorded with the removal, shown by conveyor repo show)')
    .option('--distro <distro>', 'only the repository of this distro')
    .action(
      async (
        environment: string,
        channel: string,
        name: string,
        version: string,
        opts: { reason: string; distro?: string },
        cmd: Command,
      ) => {
        const config = commandConfig(cmd);
        if (!PACKAGE.test(name)) throw new Error(`bad package name ${JSON.stringify(name)}`);
        if (!VERSION.test(version)) throw new Error(`bad version ${JSON.stringify(version)}`);
        if (!opts.reason.trim()) throw new Error('--reason must say why');
        const holding: ChannelRepo[] = [];
        for (const r of await channelRepos(config, environment, channel, opts.distro)) {
          const live = await readLive(config, r);
          if (live.packages.some((p) => p.name === name && p.version === version)) holding.push(r);
        }
        if (holding.length === 0) throw new Error(`${name} ${version} is not in ${environment} ${channel}`);
        for (const r of holding) {
          await runRewrite(config, r, { kind: 'remove', name, version, reason: opts.reason.trim() });
        }
      },
    );
}

export function repoCommand(): Command {
  return new Command('repo')
    .description('the published apt/yum repositories: generations as snapshots, rollback, removal')
    .addHelpText(
      'after',
      `
Every publish makes a new generation of a channel's repository (one per apt suite, one per yum
repository) and keeps a snapshot of it beside the state (conveyor-state/…generations/). rollback and
remove publish a NEW generation (the old ones stay listed), in the same order as a publish (files,
indexes, then the signed index), under the same lock, through a workflow on the orchestrator's queue
(an orchestrator worker must run). Files a replaced generation named stay for
storage.keepGenerationsHours, so clients that read the previous index still download them. A removed
version is refused by later publishes into the channel until a rollback restores it.

  conveyor repo list [--env staging]
  conveyor repo show staging unstable [--generation 3] [--distro bookworm]
  conveyor repo rollback staging unstable --to 3 --distro el9
  conveyor repo remove staging unstable widget 1.0.0-7 --reason "crashes on start"`,
    )
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(rollbackCommand())
    .addCommand(removeCommand());
}
