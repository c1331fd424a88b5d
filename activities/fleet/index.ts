// Fleet activities: the I/O of the staging deploy and verify stages. Find hosts by EC2 tags, read a
// package's installed version, prepare a host for a deploy (prepareHost: the versions of all its
// packages and everything of the upgrade but the install), upgrade a host to an exact version from
// the PUBLISHED repository (never the artifacts bucket: a broken publish must break the deploy),
// run a verify command on a host, or (execOnHost) one argv for an e2e step's CONVEYOR_HOST_EXEC.
// Dependencies are injected (shared/STYLE.md); workflows see only `typeof` the result. These
// activities hold the fleet's reach (SSH key, SSM, the local hosts' directory): they run on the
// orchestrator's queue, on workers that never run repository code, never on a builder.
//
// upgradeHost is idempotent from content (STYLE.md 6): it reads the host's version first and does
// nothing on a host that has it, so a retried or replayed deploy never reinstalls. It trusts no
// exit code: after the package manager says it succeeded the version is read back, and a host
// that has another one fails with VersionMismatch. The log of every attempt (all three steps,
// with Conveyor's own notes) is uploaded before a failure leaves the activity, so the logKey in a
// failure always names an existing object.
//
// prepareHost runs one script (scripts.ts prepareScript): the version of every package, then, on a
// host not at the version yet, the upgrade's key check, source and keyring, metadata refresh and
// published check, without the install. It validates and fails like upgradeHost (same types, exit
// codes 93/94), is idempotent (it writes what an upgrade writes), heartbeats and uploads its log
// the same way. A repository key that cannot be fetched makes it read versions only: a host at the
// version never needs the key, and a host that does gets the failure from its own upgrade.
// upgradeHost does not rely on it: run alone (a rollback, a retry) it refreshes and verifies in
// full; after a prepare its refresh is cheap (scripts.ts says why).
import { countHostChange } from '../metrics';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { CommandFailureDetails } from '../../common/failures';
import { HostExecLimits } from '../../common/host-exec';
import { lastLines } from '../exec/run-step';
import { activityScope, type ActivityScope } from '../repository/activity-scope';
import { compareDebVersions, compareRpmVersions } from '../repository/version-compare';
import { putText } from '../storage/s3';
import { discoverHosts } from './discover-hosts';
import type { ExecOutcome, ExecRequest, Executor } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { localExecutor, localRoot } from './local-executor';
import { ensureLocalHost } from './local-host';
import { fetchRepositoryKey, keyringIdFor, sourceIdFor } from './repo-source';
import {
  EXIT_NOT_PUBLISHED,
  EXIT_REPOSITORY,
  execScript,
  parseVersionAnswer,
  parseVersionsAnswer,
  prepareScript,
  upgradeScript,
  versionScript,
} from './scripts';
import { sshExecutor } from './ssh-executor';
import { runExamplesOnHost, type RunExamplesInput, type RunExamplesResult } from './run-examples';
import { ssmExecutor } from './ssm-executor';
import type {
  DiscoverHostsInput,
  ExecOnHostInput,
  ExecOnHostResult,
  Host,
  HostVersionInput,
  HostVersionResult,
  PackageFormat,
  PrepareHostInput,
  PrepareHostResult,
  PublishedRepo,
  RunOnHostInput,
  RunOnHostResult,
  SshSettings,
  UpgradeInput,
  UpgradeResult,
} from './types';
import { checkArgv, checkEnv, checkPackageName, checkStdin, checkSuite, checkUrl, checkVersion } from './validate';

export type * from './types';
export type { RunExamplesInput, RunExamplesResult } from './run-examples';
export { FleetFailure } from './failures';
export { HostTag } from './discover-hosts';
export { ensureLocalHost, resetLocalHost, basePath, debianMirror, defaultBaseDir } from './local-host';
export { keyringIdFor, sourceIdFor } from './repo-source';

export interface FleetDeps {
  ec2: EC2Client;
  ssm: SSMClient;
  s3: S3Client;
  artifactsBucket: string;
  artifactsPrefix: string;
  /** Local hosts: roots must lie inside it, and base roots are cached in it. Unset: the local
   * executor is refused (production). */
  hostsDir?: string;
  /** Where the base roots of local hosts are cached (default: hostsDir). A per-user cache lets
   * every clone, test run and CI run on a machine share one debootstrap. */
  baseDir?: string;
  ssh?: SshSettings;
  /** Scratch space for logs while a command runs; default the OS temp dir. */
  workDir?: string;
  /** DescribeInstances page size (5–1000); default 100. */
  discoveryPageSize?: number;
  /** How often an SSM command is polled; default 2 s. */
  ssmPollMs?: number;
}

/** How long reading a version may take (an SSM agent can be slow to pick a command up). */
const VERSION_TIMEOUT_MS = 5 * 60_000;

export function createFleetActivities(deps: FleetDeps) {
  const executors: Record<Host['executor'], Executor> = {
    local: localExecutor(deps.hostsDir),
    ssm: ssmExecutor({
      ssm: deps.ssm,
      s3: deps.s3,
      bucket: deps.artifactsBucket,
      prefix: deps.artifactsPrefix,
      pollMs: deps.ssmPollMs,
    }),
    ssh: sshExecutor(deps.ssh),
  };
  const executorFor = (host: Host): Executor => {
    const executor = (executors as Partial<Record<string, Executor>>)[host.executor];
    if (!executor)
      throw fleetFailure(
        FleetFailure.BadConfig,
        `host ${host.name}: unknown executor ${JSON.stringify(host.executor)}`,
      );
    return executor;
  };
  /** The frame of every host activity: its scope and a scratch directory of its own, both
   * closed and removed however `body` ends. */
  async function inScratch<T>(body: (scope: ActivityScope, dir: string) => Promise<T>): Promise<T> {
    const scope = activityScope();
    const root = deps.workDir ?? path.join(os.tmpdir(), 'conveyor-fleet');
    fs.mkdirSync(root, { recursive: true });
    const dir = fs.mkdtempSync(path.join(root, 'host-'));
    try {
      return await body(scope, dir);
    } finally {
      scope.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Runs one script and reports a cancellation as Temporal's CancelledFailure. */
  async function exec(
    scope: ActivityScope,
    req: Omit<ExecRequest, 'signal' | 'onTick'>,
    phase: string,
  ): Promise<ExecOutcome> {
    scope.heartbeat({ phase, host: req.host.name });
    const outcome = await executorFor(req.host).run({
      ...req,
      signal: scope.signal,
      onTick: (elapsedMs) => scope.heartbeat({ phase, host: req.host.name, elapsedMs }),
    });
    if (outcome.cancelled) {
      throw (
        (scope.signal?.reason as Error | undefined) ?? new CancelledFailure(`${phase} on ${req.host.name} cancelled`)
      );
    }
    return outcome;
  }

  /** Local hosts are made on first use (a copy of the cached base root). */
  async function ensureHost(scope: ActivityScope, host: Host, format: PackageFormat): Promise<void> {
    if (host.executor !== 'local') return;
    const root = localRoot(host, deps.hostsDir);
    const made = await ensureLocalHost(root, format, {
      baseDir: deps.baseDir ?? deps.hostsDir,
      signal: scope.signal,
      onProgress: (d) => scope.heartbeat({ ...d, host: host.name }),
      log: (m, meta) => scope.info(m, meta),
    }).catch((err: Error) => {
      if (scope.signal?.aborted) throw scope.signal.reason;
      // debootstrap needs the mirror: worth another attempt.
      throw fleetFailure(FleetFailure.HostUnreachable, `cannot make local host ${host.name}: ${err.message}`, {
        retryable: true,
      });
    });
    if (made.created) scope.info('made local host', { host: host.name, root, baseBuiltMs: made.baseBuiltMs });
  }

  async function readVersion(
    scope: ActivityScope,
    host: Host,
    format: PackageFormat,
    packageName: string,
    logFile: string,
  ): Promise<string | null> {
    const nonce = crypto.randomBytes(8).toString('hex');
    const start = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const outcome = await exec(
      scope,
      {
        host,
        script: versionScript(format),
        env: { CONVEYOR_PACKAGE: packageName, CONVEYOR_NONCE: nonce },
        logFile,
        timeoutMs: VERSION_TIMEOUT_MS,
        purpose: `read the version of ${packageName}`,
      },
      'read-version',
    );
    const output = fs.existsSync(logFile) ? fs.readFileSync(logFile).subarray(start).toString('utf8') : '';
    const answer = outcome.exitCode === 0 ? parseVersionAnswer(output, nonce) : undefined;
    if (!answer) {
      const why =
        outcome.exitCode === 0
          ? 'it reported success without the answer the query prints (did the command run at all?)'
          : outcome.timedOut
            ? `it did not answer within ${VERSION_TIMEOUT_MS / 1000} s`
            : `the query exited with ${outcome.exitCode ?? outcome.signal}`;
      throw fleetFailure(
        FleetFailure.HostUnreadable,
        `cannot read the ${format} version of ${packageName} on ${host.name}: ${why}\n${lastLines(outcome.tail, 10)}`,
      );
    }
    return answer.version;
  }

  async function uploadLog(scope: ActivityScope, logFile: string, key: string): Promise<void> {
    const body = fs.existsSync(logFile) ? fs.readFileSync(logFile) : Buffer.alloc(0);
    const signal = scope.signal?.aborted ? AbortSignal.timeout(10_000) : scope.signal;
    const put = putText(deps.s3, deps.artifactsBucket, key, body, undefined, signal);
    // Cancelled: keep the log if S3 answers soon; the cancellation is what matters.
    if (scope.signal?.aborted) await put.catch(() => undefined);
    else await put;
  }

  /** The published key, fetched here (a minimal host has no curl), as the scripts' environment. */
  async function repositoryKey(
    scope: ActivityScope,
    host: Host,
    env: Record<string, string>,
    note: (line: string) => void,
  ): Promise<Record<string, string>> {
    scope.heartbeat({ phase: 'key', host: host.name });
    const key = await fetchRepositoryKey(env.CONVEYOR_KEY_URL, scope.signal);
    note(`repository key ${key.fingerprint} (${env.CONVEYOR_KEY_URL}), source ${env.CONVEYOR_SOURCE_ID}`);
    return { CONVEYOR_KEY: key.armored, CONVEYOR_KEYRING_ID: keyringIdFor(key.fingerprint) };
  }

  /** The key for a prepare's refresh, or undefined (noted) when it cannot be fetched now. */
  async function keyForPrepare(
    scope: ActivityScope,
    host: Host,
    env: Record<string, string>,
    note: (line: string) => void,
  ): Promise<Record<string, string> | undefined> {
    try {
      return await repositoryKey(scope, host, env, note);
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === FleetFailure.RepositoryUnavailable)) throw err;
      note(`${err.message}: versions only, an upgrade of this host fetches the key itself`);
      return undefined;
    }
  }

  return {
    /** Running instances with every tag and the distro, sorted by name. [] when there are none. */
    discoverHosts: async (input: DiscoverHostsInput): Promise<Host[]> => {
      const scope = activityScope();
      try {
        return await discoverHosts(deps.ec2, input, {
          pageSize: deps.discoveryPageSize,
          signal: scope.signal,
          onPage: (page, found) => scope.heartbeat({ phase: 'discover', page, found }),
        });
      } finally {
        scope.close();
      }
    },

    /** The installed version of a package on a host (null: not installed). */
    hostVersion: (input: HostVersionInput): Promise<HostVersionResult> =>
      inScratch(async (scope, dir) => {
        checkPackageName(input.packageName);
        await ensureHost(scope, input.host, input.format);
        const version = await readVersion(
          scope,
          input.host,
          input.format,
          input.packageName,
          path.join(dir, 'version.log'),
        );
        return { version };
      }),

    /** The installed version of every package of a deploy, read in one script run with the
     * upgrade's refresh (prepareScript): the key checked, the source and keyring installed, the
     * host's lists updated and every package's version checked to be published. Nothing is
     * installed. Fails like upgradeHost (RepositoryUnavailable, VersionNotPublished, …). With
     * `refresh: false`, the versions only (no key fetched, nothing written). */
    prepareHost: (input: PrepareHostInput): Promise<PrepareHostResult> =>
      inScratch(async (scope, dir) => {
        const logFile = path.join(dir, 'prepare.log');
        const note = (line: string) => fs.appendFileSync(logFile, `conveyor: ${line}\n`);
        const { host, format, packages, version } = input;
        if (!Array.isArray(packages) || packages.length === 0 || new Set(packages).size !== packages.length) {
          throw fleetFailure(FleetFailure.BadInput, `refused package list ${JSON.stringify(packages)}`);
        }
        packages.forEach(checkPackageName);
        const nonce = crypto.randomBytes(8).toString('hex');
        const env: Record<string, string> = {
          CONVEYOR_PACKAGES: packages.join(' '),
          CONVEYOR_VERSION: checkVersion(version),
          CONVEYOR_NONCE: nonce,
          ...repositoryEnv(format, input.repo),
        };
        try {
          await ensureHost(scope, host, format);
          note(
            `${host.name}: preparing ${packages.join(', ')} ${version}${input.refresh !== false ? '' : ' (versions only)'}`,
          );
          // A key that cannot be fetched now makes this a versions-only prepare: a host already at
          // the version never needs it (upgradeHost reads the version first), and one that does
          // not gets the failure from its own upgrade, with its own batch.
          const key = input.refresh !== false ? await keyForPrepare(scope, host, env, note) : undefined;
          const refresh = key !== undefined;
          const outcome = await exec(
            scope,
            {
              host,
              script: prepareScript(format),
              env: { ...env, ...key, CONVEYOR_REFRESH: refresh ? '1' : '0' },
              logFile,
              purpose: `prepare ${packages.join(', ')} ${version}`,
            },
            'prepare',
          );
          const output = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
          const versions = parseVersionsAnswer(output, nonce, packages);
          if (!versions) {
            const why =
              outcome.exitCode === 0
                ? 'it reported success without the answer the query prints (did the command run at all?)'
                : `the script exited with ${outcome.exitCode ?? outcome.signal} before it printed them`;
            throw fleetFailure(
              FleetFailure.HostUnreadable,
              `cannot read the ${format} versions of ${packages.join(', ')} on ${host.name}: ${why}\n${lastLines(outcome.tail, 10)}`,
            );
          }
          note(
            `${host.name}: ${packages.map((p) => `${p} ${versions[p] ?? '(not installed)'}`).join(', ')} installed, ${version} wanted`,
          );
          if (outcome.exitCode !== 0) {
            throw scriptFailed({ ...input, step: 'prepare', doing: 'preparing' }, outcome, logFile);
          }
          const refreshed = refresh && packages.some((p) => versions[p] !== version);
          note(refreshed || !refresh ? 'prepared: nothing installed' : 'already at the wanted version: nothing to do');
          await uploadLog(scope, logFile, input.logKey);
          return { host: host.name, versions, refreshed, logKey: input.logKey };
        } catch (err) {
          note(`failed: ${(err as Error).message.split('\n')[0]}`);
          await uploadLog(scope, logFile, input.logKey);
          throw err;
        }
      }),

    /** Upgrades (or, with allowDowngrade, rolls back) one host to exactly `version`. */
    upgradeHost: (input: UpgradeInput): Promise<UpgradeResult> =>
      inScratch(async (scope, dir) => {
        const logFile = path.join(dir, 'upgrade.log');
        const note = (line: string) => fs.appendFileSync(logFile, `conveyor: ${line}\n`);
        const { host, format, packageName, version } = input;
        // Counted by direction: going back to an older version is a rollback (a deploy's, or a forced
        // redeploy of an older build), anything else an upgrade.
        let change: 'upgrade' | 'rollback' = 'upgrade';
        checkPackageName(packageName);
        const env: Record<string, string> = {
          CONVEYOR_PACKAGE: packageName,
          CONVEYOR_PACKAGES: packageName,
          CONVEYOR_VERSION: checkVersion(version),
          ...repositoryEnv(format, input.repo),
        };
        try {
          await ensureHost(scope, host, format);
          const before = await readVersion(scope, host, format, packageName, logFile);
          note(`${host.name}: ${packageName} ${before ?? '(not installed)'} installed, ${version} wanted`);
          if (before === version) {
            note('already at the wanted version: nothing to do');
            await uploadLog(scope, logFile, input.logKey);
            countHostChange(change, 'unchanged');
            return { host: host.name, before, after: before, logKey: input.logKey, changed: false };
          }
          const compare = format === 'deb' ? compareDebVersions : compareRpmVersions;
          const downgrade = before !== null && compare(version, before) < 0;
          if (downgrade) change = 'rollback';
          if (downgrade && !input.allowDowngrade) {
            throw fleetFailure(
              FleetFailure.DowngradeRefused,
              `host ${host.name}: ${packageName} ${version} is older than the installed ${before}; ` +
                'only a rollback (allowDowngrade) goes back',
            );
          }
          const outcome = await exec(
            scope,
            {
              host,
              script: upgradeScript(format),
              env: {
                ...env,
                ...(await repositoryKey(scope, host, env, note)),
                CONVEYOR_DOWNGRADE: downgrade ? '1' : '0',
              },
              logFile,
              purpose: `${downgrade ? 'roll back' : 'upgrade'} ${packageName} to ${version}`,
            },
            downgrade ? 'rollback' : 'upgrade',
          );
          if (outcome.exitCode !== 0) {
            throw scriptFailed(
              { ...input, packages: [packageName], step: 'upgrade', doing: 'installing' },
              outcome,
              logFile,
            );
          }
          const after = await readVersion(scope, host, format, packageName, logFile);
          note(
            `${host.name}: ${packageName} ${after ?? '(not installed)'} installed after the ${downgrade ? 'rollback' : 'upgrade'}`,
          );
          if (after !== version) {
            throw fleetFailure(
              FleetFailure.VersionMismatch,
              `host ${host.name}: wanted ${packageName} ${version}, got ${after ?? 'none installed'} ` +
                `(the package manager reported success; is the package held or pinned?)`,
              { details: { host: host.name, wanted: version, got: after, before, logKey: input.logKey } },
            );
          }
          await uploadLog(scope, logFile, input.logKey);
          countHostChange(change, 'changed');
          return { host: host.name, before, after, logKey: input.logKey, changed: true };
        } catch (err) {
          countHostChange(change, 'failed');
          note(`failed: ${(err as Error).message.split('\n')[0]}`);
          await uploadLog(scope, logFile, input.logKey);
          throw err;
        }
      }),

    /** Runs a trusted command on a host; a non-zero exit is reported, not thrown. */
    runOnHost: (input: RunOnHostInput): Promise<RunOnHostResult> =>
      inScratch(async (scope, dir) => {
        const logFile = path.join(dir, 'run.log');
        checkEnv(input.env);
        fs.writeFileSync(logFile, `$ ${input.command}\n`);
        let outcome: ExecOutcome;
        try {
          outcome = await exec(
            scope,
            {
              host: input.host,
              script: input.command,
              env: input.env,
              logFile,
              timeoutMs: input.timeoutSeconds ? input.timeoutSeconds * 1000 : undefined,
              purpose: `run ${input.command}`,
            },
            'run',
          );
        } catch (err) {
          fs.appendFileSync(logFile, `conveyor: ${(err as Error).message}\n`);
          await uploadLog(scope, logFile, input.logKey);
          throw err;
        }
        if (outcome.timedOut) fs.appendFileSync(logFile, `conveyor: timed out after ${input.timeoutSeconds} s\n`);
        await uploadLog(scope, logFile, input.logKey);
        return {
          exitCode: exitCodeOf(outcome),
          tail: lastLines(outcome.tail, 20),
          logKey: input.logKey,
          timedOut: outcome.timedOut || undefined,
          durationMs: outcome.durationMs,
        };
      }),

    /** The documented examples of a run on one host (run-examples.ts); mismatches are reported,
     * not thrown. The transcript goes to `logKey`, whatever happens. */
    runExamples: (input: RunExamplesInput): Promise<RunExamplesResult> =>
      inScratch(async (scope, dir) => {
        checkEnv(input.env);
        try {
          return await runExamplesOnHost({ exec: (req) => exec(scope, req, 'examples'), dir }, input);
        } finally {
          await uploadLog(scope, path.join(dir, 'examples.log'), input.logKey);
        }
      }),

    /** One command of an e2e step on a host of its run (the verify stage's hostExec update):
     * argv `exec`'d by sh on the host, stdin given, stdout and stderr kept apart and capped. A
     * non-zero exit is reported, not thrown. Nothing is logged to the bucket: the request and the
     * answer are in the run's history. */
    execOnHost: (input: ExecOnHostInput): Promise<ExecOnHostResult> =>
      inScratch(async (scope, dir) => {
        checkEnv(input.env);
        const argv = checkArgv(input.argv);
        const stdin = checkStdin(input.stdin);
        const outcome = await exec(
          scope,
          {
            host: input.host,
            script: execScript(argv),
            env: input.env,
            stdin,
            captureBytes: HostExecLimits.outputBytes,
            logFile: path.join(dir, 'exec.log'),
            timeoutMs: input.timeoutSeconds * 1000,
            purpose: `host-exec ${argv[0]}`,
          },
          'host-exec',
        );
        const captured = outcome.captured ?? {
          stdout: Buffer.alloc(0),
          stderr: Buffer.from(outcome.tail),
          stdoutTruncated: false,
          stderrTruncated: false,
        };
        return {
          exitCode: exitCodeOf(outcome),
          stdout: captured.stdout.toString('base64'),
          stderr: captured.stderr.toString('base64'),
          ...(captured.stdoutTruncated ? { stdoutTruncated: true } : {}),
          ...(captured.stderrTruncated ? { stderrTruncated: true } : {}),
          ...(outcome.timedOut ? { timedOut: true } : {}),
          durationMs: outcome.durationMs,
        };
      }),
  };
}

export type FleetActivities = ReturnType<typeof createFleetActivities>;

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
  KILL: 9,
  TERM: 15,
  HUP: 1,
  INT: 2,
};

/** 124 for a timeout (as timeout(1) says it), 128+n for a signal, 255 when the exit is unknown. */
function exitCodeOf(outcome: ExecOutcome): number {
  if (outcome.timedOut) return 124;
  if (outcome.exitCode !== null) return outcome.exitCode;
  const n = outcome.signal ? SIGNALS[outcome.signal] : undefined;
  return n ? 128 + n : 255;
}

/** The repository values the refresh scripts read, validated (shared by upgradeHost and prepareHost). */
function repositoryEnv(format: PackageFormat, repo: PublishedRepo): Record<string, string> {
  if (format !== 'deb' && format !== 'rpm') {
    throw fleetFailure(FleetFailure.BadInput, `refused package format ${JSON.stringify(format)}`);
  }
  const env: Record<string, string> = {
    CONVEYOR_REPO_URL: checkUrl('repository URL', repo.url),
    CONVEYOR_KEY_URL: checkUrl('key URL', repo.keyUrl),
  };
  if (format === 'deb') env.CONVEYOR_SUITE = checkSuite(repo.suite);
  env.CONVEYOR_SOURCE_ID = sourceIdFor(env.CONVEYOR_REPO_URL, env.CONVEYOR_SUITE);
  return env;
}

/** The failure of an upgrade or prepare script, by its exit code (scripts.ts). */
function scriptFailed(
  input: {
    host: Host;
    packages: string[];
    version: string;
    repo: PublishedRepo;
    logKey: string;
    step: string;
    doing: string;
  },
  outcome: ExecOutcome,
  logFile: string,
) {
  const where = `${input.repo.url}${input.repo.suite ? ` ${input.repo.suite}` : ''}`;
  const tail = lastLines(outcome.tail, 20);
  if (outcome.exitCode === EXIT_NOT_PUBLISHED) {
    // The script names each missing package: `conveyor: <package> <version> is not in …`.
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    const named = input.packages.filter((p) => log.includes(`conveyor: ${p} ${input.version} is not in `));
    const missing = named.length ? named : input.packages;
    return fleetFailure(
      FleetFailure.VersionNotPublished,
      `host ${input.host.name}: ${missing.join(', ')} ${input.version} ${missing.length > 1 ? 'are' : 'is'} not in ` +
        `the published repository ${where}; the host keeps its version\n${tail}`,
      { details: { host: input.host.name, logKey: input.logKey, tail } },
    );
  }
  if (outcome.exitCode === EXIT_REPOSITORY) {
    return fleetFailure(
      FleetFailure.RepositoryUnavailable,
      `host ${input.host.name} cannot read the published repository ${where} with the key ${input.repo.keyUrl}\n${tail}`,
      { details: { host: input.host.name, logKey: input.logKey, tail } },
    );
  }
  const details: CommandFailureDetails = {
    step: input.step,
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    logKey: input.logKey,
    tail,
  };
  return fleetFailure(
    FleetFailure.CommandFailed,
    `host ${input.host.name}: ${input.doing} ${input.packages.join(', ')} ${input.version} ` +
      `${outcome.exitCode === null ? `was stopped (${outcome.signal})` : `exited with code ${outcome.exitCode}`}\n${tail}`,
    { details },
  );
}
