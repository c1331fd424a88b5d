// conveyor.yml: schema, loader and the env overrides of shared/DESIGN.md.
// A bad file is refused at start with every problem at once, each as `path.to.key: why`.
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { branchMatcher } from '../common/branch-rules';
import { CHAT_ACTIONS, CHAT_EVENTS, type ChatRoute } from '../common/chat';
import { embeddedCredentials } from '../common/clone-url';
import { debianArch } from '../common/distro-arch';
import { ExampleLimits, examplePatternProblem } from '../common/doc-examples';
import { PACKAGE_NAME, defaultPackageName } from '../common/package-names';
import { DEFAULT_SANDBOX, SANDBOXED_STEPS } from '../common/sandbox';
import type { RepositorySpec, SandboxedStep } from '../common/types';
import { resolveTemporalSettings, type Env, type TemporalSettings } from './temporal-settings';

const s3Url = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'must be s3://<bucket>[/prefix]');
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name');
/** Paths that end up in GIT_SSH_COMMAND, which git runs with a shell: no spaces or metacharacters. */
const safePath = z.string().regex(/^[A-Za-z0-9._/@+-]+$/, 'must be a path without spaces or shell metacharacters');

// Every key carries a `.describe()` text: docs/configuration.md is generated from them
// (scripts/config-reference.ts, `npm run docs:config`), and a test fails when a key has none or the
// document drifts from the schema.

/** Where a run's events go in chat (README "ChatOps"): a channel through the bot token
 * (chat.slack.botTokenEnv), or an incoming webhook whose URL is in the env var named here. */
const notifyRule = z
  .object({
    events: z
      .array(z.enum(CHAT_EVENTS))
      .min(1, `names no event (known: ${CHAT_EVENTS.join(', ')})`)
      .default([...CHAT_EVENTS])
      .describe('The run events this rule announces (default: all of them).'),
    channel: z
      .string()
      .regex(/^[#]?[A-Za-z0-9._-]{1,80}$/, 'must be a Slack channel ID (C0123…) or name (#releases)')
      .optional()
      .describe('Slack channel ID (`C0123…`) or name (`#releases`) the bot token posts to.'),
    webhookUrlEnv: envName
      .optional()
      .describe(
        'Env var holding a Slack incoming-webhook URL to post to instead of the bot (the URL is a secret: never inline it). Read by the orchestrator only.',
      ),
  })
  .strict();

const branchRule = z
  .object({
    match: z
      .string()
      .min(1)
      .describe('Which branches the rule monitors: an exact name, a glob such as `v*.*`, or `/regex/`.'),
    channel: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/, 'must be a lowercase channel name such as unstable or stable')
      .describe('Repository channel the builds of these branches are published to (`unstable`, `stable`, …).'),
    release: z
      .boolean()
      .default(false)
      .describe('Run the release stage: tag `v<version>` at the tested commit and cut the next patch branch.'),
    approval: z
      .boolean()
      .default(false)
      .describe('Wait at an approval gate (`conveyor approve|reject`) before promoting to production.'),
    /** A queued staging deploy is skipped when a newer commit of this branch waits behind it. */
    supersede: z
      .boolean()
      .default(true)
      .describe(
        'Skip a queued staging deploy (the run ends `superseded`) when a newer commit of the branch waits behind it.',
      ),
    notify: z
      .array(notifyRule)
      .optional()
      .describe("Chat notifications of this rule's runs, beside the repository's own `notify`."),
  })
  .strict()
  .superRefine((rule, ctx) => {
    try {
      branchMatcher(rule.match);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['match'], message: `invalid regex (${(err as Error).message})` });
    }
  });

const steps = z
  .object({
    unit: z
      .string()
      .min(1)
      .optional()
      .describe('Unit tests, run with `sh -c` in the checkout on a build worker (test stage, beside `integration`).'),
    integration: z
      .string()
      .min(1)
      .optional()
      .describe('Integration tests, run in parallel with `unit` in the test stage.'),
    package: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Builds `.deb`/`.rpm` files versioned `<version>-<build>` into `$CONVEYOR_OUT` (or installs into `$CONVEYOR_ROOT` with the built-in packager). Without it a repository is tested only.',
      ),
    docs: z
      .string()
      .min(1)
      .optional()
      .describe('Writes a static site into `$CONVEYOR_OUT`, published beside the packages.'),
    smoke: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Run on every upgraded staging host through its executor (`CONVEYOR_HOST` set), as the health check of each deploy batch and in verify.',
      ),
    e2e: z
      .union([
        z.string().min(1),
        z
          .object({
            examples: z
              .array(
                z.string().superRefine((p, ctx) => {
                  const why = examplePatternProblem(p);
                  if (why) ctx.addIssue({ code: 'custom', message: why });
                }),
              )
              .min(1)
              .max(ExampleLimits.patterns)
              .describe(
                'Documents whose marked blocks are the test (`README.md`, `docs/*.md`, `docs/**/*.md`): paths in the checkout, `*` `?` `**` wildcards.',
              ),
          })
          .strict()
          .describe(
            'The built-in kind: the documents\' `conveyor-example` blocks run on one staging host per distro, their output compared with the document (README, "Documented examples").',
          ),
      ])
      .optional()
      .describe(
        'End-to-end tests: a command on a build worker against the staging hosts (`CONVEYOR_HOSTS`, `CONVEYOR_HOST_EXEC`), or `{ examples: [...] }`, the documented examples.',
      ),
  })
  .strict()
  .describe('The step commands (from this trusted file only); webhook values reach them as `CONVEYOR_*` env vars.');

/** Per repository: how its steps are isolated on the build workers (activities/exec/sandbox.ts). */
const sandbox = z
  .object({
    mode: z
      .enum(['bwrap', 'none'])
      .default('bwrap')
      .describe(
        "`bwrap` runs steps in bubblewrap; `none` runs them unsandboxed as the builder's user, only for builders that cannot create namespaces (every run's status then says so).",
      ),
    network: z
      .union([
        z.boolean(),
        z
          .array(z.enum(SANDBOXED_STEPS as [SandboxedStep, ...SandboxedStep[]]))
          .refine((a) => new Set(a).size === a.length, {
            error: 'names a step twice',
          }),
      ])
      .default(false)
      .describe(
        "`false`: no network; `true`: every step; a list: only these steps. Even with network a step cannot reach the builder's own addresses.",
      ),
    limits: z
      .object({
        memoryMb: z
          .number()
          .int()
          .min(64)
          .default(DEFAULT_SANDBOX.limits.memoryMb)
          .describe('Memory of one step, in MB (cgroup, else RLIMIT_AS).'),
        pids: z
          .number()
          .int()
          .min(16)
          .default(DEFAULT_SANDBOX.limits.pids)
          .describe('Processes of one step (cgroup pids.max, else RLIMIT_NPROC of the sandbox uid).'),
        diskMb: z
          .number()
          .int()
          .min(64)
          .default(DEFAULT_SANDBOX.limits.diskMb)
          .describe(
            'Workspace disk of one step in MB, the checkout included (loop-mounted ext4, else a usage watcher).',
          ),
        cpuSeconds: z.number().int().positive().optional().describe('CPU time of one step, in seconds (optional).'),
      })
      .strict()
      .default({ ...DEFAULT_SANDBOX.limits })
      .describe('Resource limits of each step; a step that hits one fails with a message naming it.'),
  })
  .strict()
  .default({ mode: 'bwrap', network: false, limits: { ...DEFAULT_SANDBOX.limits } });

const repository = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be a GitHub full_name such as acme/widget')
      .describe("The repository's GitHub `full_name` (`acme/widget`), as push webhooks name it."),
    cloneUrl: z
      .string()
      .min(1)
      .superRefine((url, ctx) => {
        const found = embeddedCredentials(url);
        if (found) {
          ctx.addIssue({
            code: 'custom',
            message:
              `contains ${found}: credentials in a URL end up in workflow inputs, logs and .git/config. ` +
              'Remove them and reference the credential with checkout.tokenEnv (an env var holding the token), ' +
              'checkout.sshKeyFile or checkout.githubApp',
          });
        }
      })
      .describe(
        'Where workers clone from: a URL, an scp-like remote, or a path relative to this file. Credentials in it are refused: use `checkout`.',
      ),
    /** The secret stays in the worker's env or files and reaches git through its environment
     * (activities/git/auth.ts). */
    checkout: z
      .object({
        tokenEnv: envName
          .optional()
          .describe('Env var holding an HTTPS token (read-only `contents` is enough for builders).'),
        sshKeyFile: safePath
          .optional()
          .describe('An SSH deploy key (read-only) for ssh:// or scp-like clone URLs; relative to this file.'),
        knownHostsFile: safePath
          .optional()
          .describe('known_hosts for the SSH remote; with it, host keys are checked strictly. Relative to this file.'),
        githubApp: z
          .object({
            appId: z.number().int().positive().describe("The GitHub App's ID."),
            installationId: z.number().int().positive().describe("The App's installation ID for this repository."),
            privateKeyFile: z
              .string()
              .min(1)
              .optional()
              .describe("The App's private key file (PEM), relative to this file."),
            privateKeyEnv: envName.optional().describe("Env var holding the App's private key (PEM)."),
          })
          .strict()
          .refine((a) => Boolean(a.privateKeyFile) !== Boolean(a.privateKeyEnv), {
            error: 'set exactly one of privateKeyFile and privateKeyEnv',
          })
          .optional()
          .describe(
            'A GitHub App installation; installation tokens are minted on the worker when needed. Exactly one of `privateKeyFile` and `privateKeyEnv`.',
          ),
      })
      .strict()
      .refine((c) => [c.tokenEnv, c.sshKeyFile, c.githubApp].filter(Boolean).length === 1, {
        error: 'set exactly one of tokenEnv, sshKeyFile and githubApp',
      })
      .optional()
      .describe(
        'How workers authenticate to `cloneUrl` (private repositories), by reference only: exactly one of `tokenEnv`, `sshKeyFile`, `githubApp`. Orchestrator and builders hold it.',
      ),
    branches: z
      .array(branchRule)
      .min(1, 'needs at least one branch rule')
      .describe('Branch rules, first match wins: which branches run the chain, and how.'),
    notify: z.array(notifyRule).optional().describe('Chat notifications of every branch\'s runs (README "ChatOps").'),
    steps,
    distros: z
      .array(z.string())
      .min(1, 'needs at least one distro')
      .describe('Distros (keys of `distros`) this repository is built and deployed for; the first one runs the tests.'),
    staging: z
      .object({
        tags: z
          .record(z.string(), z.string())
          .default({})
          .describe('EC2 tags that select the staging hosts (with `Distro=<distro>` added per distro).'),
        batchSize: z.number().int().positive().default(1).describe('Hosts upgraded at once in a rolling deploy.'),
      })
      .strict()
      .optional()
      .describe(
        'Staging hosts: EC2 instances with these tags; executor from their `ConveyorExecutor` tag (`ssm` default, `ssh`, `local`). Without it there is no deploy or verify.',
      ),
    stepTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .default(1800)
      .describe('How long one step may run before it is killed.'),
    workerWaitNoticeSeconds: z
      .number()
      .int()
      .positive()
      .default(120)
      .describe(
        'After this long without a builder taking a step, the run says it waits for a `build-<distro>` worker.',
      ),
    operatorWindowHours: z
      .number()
      .positive()
      .default(168)
      .describe("How long a run with a failed stage waits for an operator's `retry` or `abort` before it fails."),
    approvalTimeoutHours: z
      .number()
      .positive()
      .default(72)
      .describe('How long a run waits for `approve`/`reject` before it ends `expired` with nothing promoted.'),
    packaging: z
      .object({
        builtin: z
          .object({
            name: z
              .string()
              .regex(/^[a-z0-9][a-z0-9+.-]+$/, 'must be a valid package name (lowercase)')
              .describe('Package name; must be among `packages`.'),
            maintainer: z.string().min(1).describe('The Maintainer / Packager field.'),
            description: z.string().min(1).describe("The package's description."),
            arch: z
              .string()
              .optional()
              .describe("`all`/`noarch` for architecture-independent packages; default: the distro's arch."),
            depends: z
              .object({
                deb: z.array(z.string()).default([]).describe('Depends of the .deb.'),
                rpm: z.array(z.string()).default([]).describe('Requires of the .rpm.'),
              })
              .strict()
              .default({ deb: [], rpm: [] })
              .describe('Dependencies per package format.'),
            compression: z
              .enum(['xz', 'gzip', 'zstd'])
              .optional()
              .describe(
                "Payload compression of both packages (dpkg-deb -Z, rpm's _binary_payload); default: the tools' own (xz for .deb). `gzip` builds a large package in seconds where xz takes minutes.",
              ),
          })
          .strict()
          .describe(
            'The built-in packager: the `package` step only installs into `$CONVEYOR_ROOT` (`make install DESTDIR=$CONVEYOR_ROOT`) and Conveyor builds the .deb with dpkg-deb and the .rpm with rpmbuild.',
          ),
      })
      .strict()
      .optional()
      .describe('How packages are made when the step does not build them itself.'),
    packages: z
      .array(
        z
          .string()
          .regex(PACKAGE_NAME, 'must be a package name (letters, digits and . _ + -, starting with a letter or digit)'),
      )
      .min(1, 'needs at least one package name (or leave packages out for the default)')
      .optional()
      .describe(
        'Package names this repository may build and publish (default: its name without the owner, `widget` for `acme/widget`); another repository cannot publish them in a channel.',
      ),
    retention: z
      .object({
        keepBuilds: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe("Builds per package a channel keeps; older ones leave the repository's indexes."),
      })
      .strict()
      .default({ keepBuilds: 10 })
      .describe('What publishing keeps of older builds.'),
    sandbox: sandbox.describe('How the steps are isolated on the build workers (README "Sandbox").'),
  })
  .strict()
  .describe('One monitored GitHub repository.');

/** The webhook API (api/main.ts): what it accepts from the internet, and where it shows runs. */
export const API_DEFAULTS = {
  maxBodyBytes: 26_214_400,
  spoolDir: '.conveyor/spool',
  startTimeoutMs: 5000,
  statusHost: '127.0.0.1',
  statusPort: 3001,
  maxConnections: 256,
  maxBufferedBytes: 67_108_864,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
} as const;

const apiSchema = z
  .object({
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(API_DEFAULTS.maxBodyBytes)
      .describe('Larger bodies are refused with 413 without being read; GitHub caps payloads at 25 MB.'),
    spoolDir: z
      .string()
      .min(1)
      .default(API_DEFAULTS.spoolDir)
      .describe(
        'Verified pushes wait here while Temporal is unreachable; relative to this file. Must survive a restart (not a tmpfs); API instances on one host may share it.',
      ),
    startTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(8000)
      .default(API_DEFAULTS.startTimeoutMs)
      .describe('How long a webhook waits for Temporal to accept a start before the push is spooled.'),
    statusHost: z
      .string()
      .min(1)
      .default(API_DEFAULTS.statusHost)
      .describe(
        'Address of the status listener (`/runs/<id>`, `/metrics`, `/healthz`, `/readyz`); beyond loopback only with `statusTokenEnv`.',
      ),
    statusPort: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(API_DEFAULTS.statusPort)
      .describe('Port of the status listener (`--status-port` wins).'),
    statusTokenEnv: envName
      .optional()
      .describe(
        'Env var holding a bearer token (16 characters or more) for `/runs` and `/metrics`; set, both listeners require it and the webhook listener serves them too.',
      ),
    maxConnections: z
      .number()
      .int()
      .min(1)
      .default(API_DEFAULTS.maxConnections)
      .describe('Open connections on the webhook listener; past it, the oldest unverified one is dropped.'),
    maxBufferedBytes: z
      .number()
      .int()
      .positive()
      .default(API_DEFAULTS.maxBufferedBytes)
      .describe(
        'Request body bytes held in memory across all requests before their signature is checked; at least `maxBodyBytes`.',
      ),
    headersTimeoutMs: z
      .number()
      .int()
      .min(1000)
      .default(API_DEFAULTS.headersTimeoutMs)
      .describe('A sender slower than this with its headers gets 408 and is disconnected.'),
    requestTimeoutMs: z
      .number()
      .int()
      .min(1000)
      .default(API_DEFAULTS.requestTimeoutMs)
      .describe('A sender slower than this with its whole request gets 408 and is disconnected.'),
  })
  .strict()
  .superRefine((api, ctx) => {
    if (api.maxBufferedBytes < api.maxBodyBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxBufferedBytes'],
        message: `must be at least maxBodyBytes (${api.maxBodyBytes}), or no body of the largest size fits`,
      });
    }
    if (api.headersTimeoutMs > api.requestTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['headersTimeoutMs'],
        message: `must not exceed requestTimeoutMs (${api.requestTimeoutMs}): the headers are part of the request`,
      });
    }
  })
  .default({ ...API_DEFAULTS })
  .describe('The webhook API (`api/main.ts`): what it accepts from the internet, and where it shows runs.');

/** Slack user IDs (U…, or W… on Enterprise Grid), as slash commands and buttons name the sender. */
export const SLACK_USER_ID = /^[UW][A-Z0-9]{2,20}$/;
const CHAT_GROUP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const CHAT_GROUP_KEY = /^group:(.+)$/;

/** ChatOps (README "ChatOps"): Slack's API, who may do what from chat, and the secrets by reference. */
const chatSchema = z
  .object({
    slack: z
      .object({
        apiUrl: z
          .url({ protocol: /^https?$/ })
          .default('https://slack.com/api')
          .describe('Slack Web API base URL (tests point it at a local stand-in).'),
        botTokenEnv: envName
          .optional()
          .describe('Env var holding the bot token (`xoxb-…`), read by the orchestrator only.'),
        signingSecretEnv: envName
          .default('SLACK_SIGNING_SECRET')
          .describe("Env var holding the app's signing secret, read by the API only (it refuses to start without it)."),
        teamId: z
          .string()
          .regex(/^T[A-Z0-9]{2,20}$/, 'must be a Slack team ID (T0123…)')
          .optional()
          .describe('When set, requests of another workspace are refused.'),
        responseUrlPrefixes: z
          .array(
            z
              .url({ protocol: /^https?$/ })
              .refine(
                (u) => /^https?:\/\/[^/]+\/.*$/.test(u),
                'must end its host with a slash (https://hooks.slack.com/)',
              ),
          )
          .default(['https://hooks.slack.com/'])
          .describe("Where follow-up answers may be posted: a request's `response_url` must start with one."),
      })
      .strict()
      .default({
        apiUrl: 'https://slack.com/api',
        signingSecretEnv: 'SLACK_SIGNING_SECRET',
        responseUrlPrefixes: ['https://hooks.slack.com/'],
      })
      .describe("Slack's API and the app's secrets, by env var name."),
    groups: z
      .record(z.string(), z.array(z.string().regex(SLACK_USER_ID, 'must be a Slack user ID (U0123…)')))
      .default({})
      .describe('Named sets of Slack user IDs (`U0123…`), granted together as `group:<name>` in `access`.'),
    access: z
      .record(
        z.string(),
        z
          .record(
            z.string(),
            z.array(z.enum(CHAT_ACTIONS)).min(1, `grants nothing (actions: ${CHAT_ACTIONS.join(', ')})`),
          )
          .describe('Slack user ID or `group:<name>` → the actions granted (`status` covers `list`).'),
      )
      .default({})
      .describe(
        'Who may do what from chat, per repository (full name, or `*` for every one). Nothing is granted by default.',
      ),
  })
  .strict()
  .describe('ChatOps: Slack notifications, slash commands and buttons (README "ChatOps").');

export const conveyorSchema = z
  .object({
    temporal: z
      .object({
        address: z
          .string()
          .min(1)
          .optional()
          .describe(
            "Frontend `host:port`. `TEMPORAL_ADDRESS` wins; unset: the profile file's, else `localhost:7233` (config/temporal-settings.ts).",
          ),
        namespace: z
          .string()
          .min(1)
          .optional()
          .describe("Namespace. `TEMPORAL_NAMESPACE` wins; unset: the profile file's, else `default`."),
        profile: z
          .string()
          .min(1)
          .optional()
          .describe(
            'Profile of the Temporal TOML file (`TEMPORAL_CONFIG_FILE`, else `~/.config/temporalio/temporal.toml`); else `TEMPORAL_PROFILE`, else `default`.',
          ),
        taskQueue: z
          .string()
          .min(1)
          .default('conveyor')
          .describe("The orchestrator's task queue (pipelines, stage children, trusted activities)."),
        apiKeyEnv: envName
          .optional()
          .describe(
            'Env var holding a Temporal API key (Temporal Cloud, secured clusters); never the key itself. An API key turns TLS on. `TEMPORAL_API_KEY` wins.',
          ),
        tls: z
          .object({
            certFile: z.string().optional().describe('Client certificate (PEM) for mTLS.'),
            keyFile: z.string().optional().describe("The client certificate's private key (PEM)."),
            caFile: z.string().optional().describe("CA that signed the server's certificate, when not a public one."),
            serverName: z.string().optional().describe('Server name to verify, when it differs from the address.'),
            disabled: z.boolean().optional().describe('`true` turns TLS off even where a profile sets it.'),
          })
          .strict()
          .optional()
          .describe('TLS to the frontend; `TEMPORAL_TLS*` env vars win field by field.'),
        uiUrl: z
          .string()
          .default('http://localhost:8233')
          .describe('Temporal Web UI base URL, for links in commit statuses, chat messages and the CLI.'),
      })
      .strict()
      .default({
        taskQueue: 'conveyor',
        uiUrl: 'http://localhost:8233',
      })
      .describe('The Temporal connection of workers, API and CLI (README "Production settings").'),
    aws: z
      .object({
        region: z.string().default('us-east-1').describe('AWS region (`AWS_REGION` wins).'),
        endpoint: z
          .url()
          .optional()
          .describe(
            'One endpoint for S3, EC2 and SSM: the local stack only (`AWS_ENDPOINT_URL` wins). Leave it out in production: then the default credential chain applies.',
          ),
      })
      .strict()
      .default({ region: 'us-east-1' })
      .describe('AWS: S3 buckets, EC2 host discovery, SSM Run Command.'),
    github: z
      .object({
        webhookSecretEnv: envName
          .default('GITHUB_WEBHOOK_SECRET')
          .describe('Env var holding the webhook secret (16 characters or more); API only.'),
        tokenEnv: envName
          .default('GITHUB_TOKEN')
          .describe(
            'Env var holding the GitHub token for commit statuses, release tags and pushes; orchestrator only.',
          ),
        apiUrl: z
          .url({ protocol: /^https?$/ })
          .default('https://api.github.com')
          .describe('REST API base URL for commit statuses; GitHub Enterprise Server: `https://HOST/api/v3`.'),
      })
      .strict()
      .default({
        webhookSecretEnv: 'GITHUB_WEBHOOK_SECRET',
        tokenEnv: 'GITHUB_TOKEN',
        apiUrl: 'https://api.github.com',
      })
      .describe('GitHub: the secrets by env var name, and the API.'),
    api: apiSchema,
    signing: z
      .object({
        keyFile: z
          .string()
          .optional()
          .describe(
            'Armored private RSA key (no passphrase) that signs repositories; relative to this file. Orchestrator only.',
          ),
        keyEnv: envName.optional().describe('Instead of `keyFile`: env var holding the armored key.'),
        nextKeyFile: z
          .string()
          .optional()
          .describe(
            'A key rotation\'s new key (armored private RSA, no passphrase; relative to this file): while set, indexes are signed by both keys and `keys/conveyor.asc` holds both public keys (README "Rotating the signing key").',
          ),
        nextKeyEnv: envName.optional().describe('Instead of `nextKeyFile`: env var holding the new armored key.'),
        validDays: z
          .union([
            z.number().min(0),
            z
              .object({
                staging: z.number().min(0).optional().describe('Days for the staging repositories.'),
                production: z.number().min(0).optional().describe('Days for the production repositories.'),
              })
              .strict(),
          ])
          .optional()
          .describe(
            '`Valid-Until` of APT Releases, days after signing (default 7; 0: none), for both environments or per environment. The `conveyor-resign-releases` schedule renews it.',
          ),
      })
      .strict()
      .optional()
      .describe('The key that signs the apt and yum repositories.'),
    storage: z
      .object({
        artifacts: s3Url.describe(
          'Where builds store packages, docs and logs: `s3://<bucket>[/prefix]`. Builders write here.',
        ),
        staging: s3Url.describe('Bucket of the staging apt/yum repositories and docs: `s3://<bucket>[/prefix]`.'),
        production: s3Url.describe('Bucket of the production apt/yum repositories and docs: `s3://<bucket>[/prefix]`.'),
        audit: s3Url
          .optional()
          .describe(
            'Where the audit trail of operator actions goes (one JSON object per action under `<prefix>audit/<day>/`, written by the orchestrator); default: the artifacts bucket and prefix. Builders may write there: give it a bucket of its own, with versioning or Object Lock, where the trail must hold against a compromised build host.',
          ),
        publicUrls: z
          .object({
            staging: z.url().optional().describe('HTTP base URL of the staging bucket.'),
            production: z.url().optional().describe('HTTP base URL of the production bucket.'),
          })
          .strict()
          .optional()
          .describe(
            'Where hosts and users read the repository buckets over HTTP (a CDN, a website endpoint). Default: `<aws.endpoint>/<bucket>` locally, `https://<bucket>.s3.<region>.amazonaws.com` on AWS.',
          ),
        keepGenerationsHours: z
          .number()
          .positive()
          .default(24)
          .describe(
            'How long the files of a replaced repository generation stay readable, so a client that read an older index still finds them.',
          ),
        multipartThresholdMB: z
          .number()
          .min(5)
          .default(64)
          .describe('Uploads larger than this go up as multipart uploads (a single PUT stops at 5 GB).'),
      })
      .strict()
      .describe('The S3 buckets.'),
    // Names are checked in superRefine below: zod reports a key that fails its own schema only as
    // "Invalid key in record", without the reason.
    distros: z
      .record(
        z.string(),
        z
          .object({
            format: z.enum(['deb', 'rpm']).describe('Package format of the distro.'),
            codename: z
              .string()
              .optional()
              .describe('APT suite prefix (`<codename>-<channel>`; default: the distro name). deb only.'),
            arch: z
              .string()
              .min(1)
              .describe('Binary architecture; Debian names for deb (`x86_64` is read as `amd64`).'),
          })
          .strict()
          // A deb distro speaks Debian's names: `x86_64` would fail every package stage and list
          // arch-all packages where no amd64 client reads (common/distro-arch.ts).
          .transform((d) => (d.format === 'deb' ? { ...d, arch: debianArch(d.arch) } : d))
          .describe('One distro; its name (lowercase, digits, dashes) names its build queue `build-<distro>`.'),
      )
      .describe('The distros packages are built for.'),
    workspace: z
      .string()
      .optional()
      .describe(
        'Where workers make checkouts and step workspaces (relative to this file); default `$TMPDIR/conveyor-work`. Must be traversable (`o+x`) by `sandbox.uid`.',
      ),
    /** SIGTERM lets running activities finish for up to shutdownGraceSeconds; maxConcurrentActivities
     * caps steps per build queue (the SDK's default of 100 is effectively unlimited for builds). */
    workers: z
      .object({
        shutdownGraceSeconds: z
          .number()
          .int()
          .positive()
          .optional()
          .describe(
            "On SIGTERM a worker stops polling and lets running activities finish for this long; default: the repositories' longest `stepTimeoutSeconds` plus 60.",
          ),
        maxConcurrentActivities: z
          .number()
          .int()
          .positive()
          .default(4)
          .describe('Steps each build queue of a builder runs at once.'),
        orchestratorMaxConcurrentActivities: z
          .number()
          .int()
          .positive()
          .default(100)
          .describe('Activities the orchestrator runs at once.'),
        maxCachedWorkflows: z
          .number()
          .int()
          .min(2)
          .default(100)
          .describe(
            "Workflows the orchestrator keeps in its sticky cache; an evicted workflow is replayed at its next task. The SDK's default, sized from the heap limit, is ~2,300; under 100 concurrent runs (about 700 open workflows) a cache of 500 let the orchestrator's RSS reach 538–606 MB, one of 100 kept it at 471 MB for the same CPU time (docs/benchmarks.md).",
          ),
        metricsHost: z
          .string()
          .min(1)
          .default('127.0.0.1')
          .describe('Address the workers serve their Prometheus endpoints on (`http://<metricsHost>:<port>/metrics`).'),
        metricsPort: z
          .number()
          .int()
          .min(1)
          .max(65535)
          .optional()
          .describe("The orchestrator's Prometheus port; `--metrics-port N` wins. Absent: no endpoint."),
        builderMetricsPort: z
          .number()
          .int()
          .min(1)
          .max(65535)
          .optional()
          .describe(
            "A builder's Prometheus port; `--metrics-port N` wins (two builders on one machine need two). Absent: no endpoint.",
          ),
      })
      .strict()
      .default({
        maxConcurrentActivities: 4,
        orchestratorMaxConcurrentActivities: 100,
        maxCachedWorkflows: 100,
        metricsHost: '127.0.0.1',
      })
      .describe('Worker processes.'),
    /** Never 0; a uid of its own (no other process uses it) keeps RLIMIT_NPROC meaningful where
     * cgroups are unavailable. */
    sandbox: z
      .object({
        uid: z
          .number()
          .int()
          .min(1, 'must not be 0: steps never run as root')
          .default(65534)
          .describe(
            'The unprivileged uid steps run as when the builder runs as root; best a uid no other process uses.',
          ),
        gid: z
          .number()
          .int()
          .min(1, 'must not be 0: steps never run as root')
          .default(65534)
          .describe('The gid steps run as.'),
      })
      .strict()
      .default({ uid: 65534, gid: 65534 })
      .describe("The build workers' sandbox (activities/exec/sandbox.ts)."),
    fleet: z
      .object({
        hostsDir: z
          .string()
          .optional()
          .describe(
            'Local stack only: where the local staging hosts (Debian roots) live. Leave it unset in production.',
          ),
        ssh: z
          .object({
            keyFile: z
              .string()
              .optional()
              .describe('Private key for the hosts; default `~/.ssh/id_ed25519` (or ecdsa, rsa).'),
            knownHostsFile: z
              .string()
              .optional()
              .describe("The hosts' keys, checked strictly; default `~/.ssh/known_hosts`."),
            user: z.string().optional().describe('Login user; default `root` (others run commands with `sudo -n`).'),
          })
          .strict()
          .optional()
          .describe('SSH settings for hosts tagged `ConveyorExecutor=ssh`; orchestrator only.'),
      })
      .strict()
      .optional()
      .describe('Staging hosts.'),
    chat: chatSchema.optional(),
    repositories: z.array(repository).describe('The monitored repositories.'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    chatProblems(cfg, ctx);
    for (const name of Object.keys(cfg.distros)) {
      if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['distros', name],
          message: 'distro names are lowercase letters, digits and dashes (they name the build-<distro> queues)',
        });
      }
    }
    cfg.repositories.forEach((repo, i) => {
      repo.distros.forEach((d, j) => {
        if (!cfg.distros[d]) {
          ctx.addIssue({
            code: 'custom',
            path: ['repositories', i, 'distros', j],
            message: `unknown distro "${d}" (known: ${Object.keys(cfg.distros).join(', ') || 'none'})`,
          });
        }
      });
      const packages = repo.packages ?? [defaultPackageName(repo.name)];
      if (!repo.packages && !PACKAGE_NAME.test(packages[0])) {
        ctx.addIssue({
          code: 'custom',
          path: ['repositories', i, 'packages'],
          message: `the default package name ${JSON.stringify(packages[0])} (the repository name without its owner) is not a package name: list the packages`,
        });
      }
      repo.packages?.forEach((name, j) => {
        if (repo.packages!.indexOf(name) !== j) {
          ctx.addIssue({ code: 'custom', path: ['repositories', i, 'packages', j], message: `duplicate of ${name}` });
        }
      });
      const builtin = repo.packaging?.builtin?.name;
      if (builtin && !packages.includes(builtin)) {
        ctx.addIssue({
          code: 'custom',
          path: ['repositories', i, 'packaging', 'builtin', 'name'],
          message: `package ${JSON.stringify(builtin)} is not among ${repo.name}'s packages (packages: [${packages.join(', ')}]); add it to repositories[${i}].packages`,
        });
      }
      const seen = cfg.repositories.findIndex((r) => r.name === repo.name);
      if (seen !== i) {
        ctx.addIssue({
          code: 'custom',
          path: ['repositories', i, 'name'],
          message: `duplicate of repositories[${seen}]`,
        });
      }
    });
  });

type NotifyRule = z.infer<typeof notifyRule>;
type ChatParsedConfig = Pick<z.infer<typeof conveyorSchema>, 'chat' | 'repositories'>;

/** Notify rules that need the bot token name it; access names known repositories and groups. */
function chatProblems(cfg: ChatParsedConfig, ctx: z.RefinementCtx): void {
  const bot = cfg.chat?.slack.botTokenEnv;
  const check = (rules: NotifyRule[] | undefined, at: (string | number)[]) =>
    rules?.forEach((rule, k) => {
      if (rule.webhookUrlEnv) return;
      if (!bot) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, k],
          message: 'set webhookUrlEnv (an incoming webhook), or chat.slack.botTokenEnv to post with a bot token',
        });
      } else if (!rule.channel) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, k, 'channel'],
          message: 'a bot token posts to a channel: name it (C0123… or #releases)',
        });
      }
    });
  cfg.repositories.forEach((repo, i) => {
    check(repo.notify, ['repositories', i, 'notify']);
    repo.branches.forEach((b, j) => check(b.notify, ['repositories', i, 'branches', j, 'notify']));
  });
  const chat = cfg.chat;
  if (!chat) return;
  for (const name of Object.keys(chat.groups)) {
    if (!CHAT_GROUP_NAME.test(name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['chat', 'groups', name],
        message: 'group names are lowercase letters, digits, - and _',
      });
    }
  }
  for (const [repo, grants] of Object.entries(chat.access)) {
    if (repo !== '*' && !cfg.repositories.some((r) => r.name.toLowerCase() === repo.toLowerCase())) {
      ctx.addIssue({
        code: 'custom',
        path: ['chat', 'access', repo],
        message: `repository ${repo} is not configured (a configured full name, or * for every repository)`,
      });
    }
    for (const key of Object.keys(grants)) {
      const group = CHAT_GROUP_KEY.exec(key)?.[1];
      if (!group && !SLACK_USER_ID.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: ['chat', 'access', repo, key],
          message: 'must be a Slack user ID (U0123…, from the profile: ⋮ → Copy member ID) or group:<name>',
        });
      } else if (group && !chat.groups[group]) {
        ctx.addIssue({
          code: 'custom',
          path: ['chat', 'access', repo, key],
          message: `unknown group ${group} (chat.groups: ${Object.keys(chat.groups).join(', ') || 'none'})`,
        });
      }
    }
  }
}

type ParsedConfig = z.infer<typeof conveyorSchema>;
export type ConveyorConfig = Omit<ParsedConfig, 'temporal'> & {
  /** address and namespace as resolved at load (env, this file, profile, default). */
  temporal: Omit<ParsedConfig['temporal'], 'address' | 'namespace'> & {
    address: string;
    namespace: string;
    /** Where address and namespace came from, for messages. */
    sources?: TemporalSettings['sources'];
  };
  /** Absolute path of the file this came from. */
  file: string;
};
export type RepositoryConfig = ConveyorConfig['repositories'][number];
export type BranchRule = RepositoryConfig['branches'][number];

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid configuration\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export type { Env };

export function formatPath(p: readonly PropertyKey[]): string {
  return p.reduce<string>(
    (acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)),
    '',
  );
}

/** Parses YAML text and validates it, every problem reported as `path: message`. */
export function parseYamlWithSchema<T extends z.ZodType>(file: string, text: string, schema: T): z.infer<T> {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`),
    );
  }
  const result = schema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(
      file,
      result.error.issues.map((i) => `${formatPath(i.path) || '(top level)'}: ${i.message}`),
    );
  }
  return result.data;
}

/** Which config file an entry point uses: --config, else CONVEYOR_CONFIG, else conveyor.yml / conveyor.dev.yml. */
export function resolveConfigPath(flag: string | undefined, env: Env, cwd = process.cwd()): string {
  const chosen = flag ?? env.CONVEYOR_CONFIG;
  if (chosen) return path.resolve(cwd, chosen);
  for (const name of ['conveyor.yml', 'conveyor.dev.yml']) {
    const p = path.resolve(cwd, name);
    if (fs.existsSync(p)) return p;
  }
  return path.resolve(cwd, 'conveyor.dev.yml');
}

/**
 * Loads conveyor.yml. Env AWS_ENDPOINT_URL, AWS_REGION win over the file; Temporal's address and
 * namespace resolve as config/temporal-settings.ts says (TEMPORAL_* env > this file > profile > default).
 */
export function loadConfig(file: string, env: Env = process.env): ConveyorConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  const parsed = parseYamlWithSchema(file, text, conveyorSchema);
  const dir = path.dirname(file);
  let temporal: TemporalSettings;
  try {
    temporal = resolveTemporalSettings(parsed.temporal, env);
  } catch (err) {
    // A profile that does not exist, a TOML file that does not parse.
    throw new ConfigError(file, [`temporal: ${(err as Error).message}`]);
  }
  const cfg: ConveyorConfig = {
    ...parsed,
    temporal: {
      ...parsed.temporal,
      address: temporal.address,
      namespace: temporal.namespace,
      sources: temporal.sources,
    },
    file,
  };
  if (env.AWS_ENDPOINT_URL) cfg.aws = { ...cfg.aws, endpoint: env.AWS_ENDPOINT_URL };
  if (env.AWS_REGION) cfg.aws = { ...cfg.aws, region: env.AWS_REGION };
  if (cfg.signing?.keyFile) cfg.signing = { ...cfg.signing, keyFile: path.resolve(dir, cfg.signing.keyFile) };
  if (cfg.signing?.nextKeyFile) {
    cfg.signing = { ...cfg.signing, nextKeyFile: path.resolve(dir, cfg.signing.nextKeyFile) };
  }
  if (cfg.workspace) cfg.workspace = path.resolve(dir, cfg.workspace);
  if (cfg.fleet?.hostsDir) cfg.fleet = { ...cfg.fleet, hostsDir: path.resolve(dir, cfg.fleet.hostsDir) };
  cfg.repositories = cfg.repositories.map((r) => ({
    ...r,
    cloneUrl: resolveCloneUrl(r.cloneUrl, dir),
    checkout: r.checkout && resolveCheckoutPaths(r.checkout, dir),
  }));
  return cfg;
}

function resolveCheckoutPaths<
  T extends { sshKeyFile?: string; knownHostsFile?: string; githubApp?: { privateKeyFile?: string } },
>(c: T, dir: string): T {
  return {
    ...c,
    ...(c.sshKeyFile ? { sshKeyFile: path.resolve(dir, c.sshKeyFile) } : {}),
    ...(c.knownHostsFile ? { knownHostsFile: path.resolve(dir, c.knownHostsFile) } : {}),
    ...(c.githubApp?.privateKeyFile
      ? { githubApp: { ...c.githubApp, privateKeyFile: path.resolve(dir, c.githubApp.privateKeyFile) } }
      : {}),
  };
}

/** URLs and scp-like remotes stay as they are; a plain path is taken relative to the config file. */
function resolveCloneUrl(url: string, dir: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url)) return url;
  return path.resolve(dir, url);
}

/** The env vars that hold chat credentials (bot token, incoming-webhook URLs): orchestrator only. */
export function chatCredentialEnvNames(config: Pick<ConveyorConfig, 'chat' | 'repositories'>): string[] {
  const names = new Set<string>();
  if (config.chat?.slack.botTokenEnv) names.add(config.chat.slack.botTokenEnv);
  for (const r of config.repositories) {
    for (const rule of [...(r.notify ?? []), ...r.branches.flatMap((b) => b.notify ?? [])]) {
      if (rule.webhookUrlEnv) names.add(rule.webhookUrlEnv);
    }
  }
  return [...names];
}

export function findRepository(cfg: ConveyorConfig, name: string): RepositoryConfig | undefined {
  return cfg.repositories.find((r) => r.name.toLowerCase() === name.toLowerCase());
}

/** Parses `s3://bucket/prefix` into its parts; the prefix has no leading slash and ends with `/` when set. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new Error(`not an s3:// URL: ${url}`);
  const prefix = m[2] ? m[2].replace(/\/?$/, '/') : '';
  return { bucket: m[1], prefix };
}

export function repositorySpec(
  config: Pick<ConveyorConfig, 'distros' | 'storage' | 'aws' | 'temporal'> & Partial<Pick<ConveyorConfig, 'chat'>>,
  repo: RepositoryConfig,
  rule: BranchRule,
): RepositorySpec {
  const notify = chatRoutes(config, [...(repo.notify ?? []), ...(rule.notify ?? [])]);
  return {
    name: repo.name,
    cloneUrl: repo.cloneUrl,
    steps: { ...repo.steps },
    distros: [...repo.distros],
    channel: rule.channel,
    release: rule.release,
    approval: rule.approval,
    supersede: rule.supersede,
    staging: repo.staging ? { tags: { ...repo.staging.tags }, batchSize: repo.staging.batchSize } : undefined,
    stepTimeoutSeconds: repo.stepTimeoutSeconds,
    workerWaitNoticeSeconds: repo.workerWaitNoticeSeconds,
    builtinPackage: repo.packaging?.builtin,
    packages: [...(repo.packages ?? [defaultPackageName(repo.name)])],
    keepBuilds: repo.retention.keepBuilds,
    sandbox: {
      mode: repo.sandbox.mode,
      network: Array.isArray(repo.sandbox.network) ? [...repo.sandbox.network] : repo.sandbox.network,
      limits: { ...repo.sandbox.limits },
    },
    operatorWindowSeconds: Math.round(repo.operatorWindowHours * 3600),
    approvalTimeoutSeconds: Math.round(repo.approvalTimeoutHours * 3600),
    distroSpecs: Object.fromEntries(repo.distros.map((d) => [d, { ...config.distros[d] }])),
    buckets: {
      staging: parseS3Url(config.storage.staging).bucket,
      production: parseS3Url(config.storage.production).bucket,
    },
    publicUrls: { staging: publicUrl(config, 'staging'), production: publicUrl(config, 'production') },
    webUiUrl: config.temporal.uiUrl.replace(/\/$/, ''),
    ...(notify.length > 0 ? { notify } : {}),
  };
}

/** Notify rules as a run's routes: env var names only, never a token or a webhook URL. */
function chatRoutes(config: Partial<Pick<ConveyorConfig, 'chat'>>, rules: NotifyRule[]): ChatRoute[] {
  const bot = config.chat?.slack.botTokenEnv;
  return rules.flatMap((r): ChatRoute[] => {
    const events = [...r.events];
    if (r.webhookUrlEnv) {
      return [
        { events, ...(r.channel ? { channel: r.channel } : {}), via: { kind: 'webhook', urlEnv: r.webhookUrlEnv } },
      ];
    }
    return bot && r.channel ? [{ events, channel: r.channel, via: { kind: 'bot', tokenEnv: bot } }] : [];
  });
}

/** The HTTP base URL of an environment's bucket, as hosts and users read it. */
export function publicUrl(
  config: Pick<ConveyorConfig, 'storage' | 'aws'>,
  environment: 'staging' | 'production',
): string {
  const configured = config.storage.publicUrls?.[environment];
  if (configured) return configured.replace(/\/$/, '');
  const { bucket, prefix } = parseS3Url(config.storage[environment]);
  const base = config.aws.endpoint
    ? `${config.aws.endpoint.replace(/\/$/, '')}/${bucket}`
    : `https://${bucket}.s3.${config.aws.region}.amazonaws.com`;
  return prefix ? `${base}/${prefix.replace(/\/$/, '')}` : base;
}
