// conveyor.yml: schema, loader and the env overrides of shared/DESIGN.md.
// A bad file is refused at start with every problem at once, each as `path.to.key: why`.
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { branchMatcher } from '../common/branch-rules';
import { DEFAULT_SANDBOX, SANDBOXED_STEPS } from '../common/sandbox';
import type { RepositorySpec, SandboxedStep } from '../common/types';

const s3Url = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'must be s3://<bucket>[/prefix]');
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name');

const branchRule = z
  .object({
    match: z.string().min(1),
    channel: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be a lowercase channel name such as unstable or stable'),
    release: z.boolean().default(false),
    approval: z.boolean().default(false),
    /** A queued staging deploy is skipped when a newer commit of this branch waits behind it. */
    supersede: z.boolean().default(true),
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
    unit: z.string().min(1).optional(),
    integration: z.string().min(1).optional(),
    package: z.string().min(1).optional(),
    docs: z.string().min(1).optional(),
    smoke: z.string().min(1).optional(),
    e2e: z.string().min(1).optional(),
  })
  .strict();

/** Per repository: how its steps are isolated on the build workers (activities/exec/sandbox.ts). */
const sandbox = z
  .object({
    /** `none` runs the steps unsandboxed as the builder's user: only for builders that cannot create
     * namespaces, and every run's status then says so. */
    mode: z.enum(['bwrap', 'none']).default('bwrap'),
    /** false: no network (default); true: every step; a list: only these steps. Even with network a
     * step cannot reach the builder's own addresses (its loopback services included). */
    network: z
      .union([
        z.boolean(),
        z
          .array(z.enum(SANDBOXED_STEPS as [SandboxedStep, ...SandboxedStep[]]))
          .refine((a) => new Set(a).size === a.length, {
            error: 'names a step twice',
          }),
      ])
      .default(false),
    limits: z
      .object({
        memoryMb: z.number().int().min(64).default(DEFAULT_SANDBOX.limits.memoryMb),
        pids: z.number().int().min(16).default(DEFAULT_SANDBOX.limits.pids),
        diskMb: z.number().int().min(64).default(DEFAULT_SANDBOX.limits.diskMb),
        cpuSeconds: z.number().int().positive().optional(),
      })
      .strict()
      .default({ ...DEFAULT_SANDBOX.limits }),
  })
  .strict()
  .default({ mode: 'bwrap', network: false, limits: { ...DEFAULT_SANDBOX.limits } });

const repository = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be a GitHub full_name such as acme/widget'),
    cloneUrl: z.string().min(1),
    branches: z.array(branchRule).min(1, 'needs at least one branch rule'),
    steps,
    distros: z.array(z.string()).min(1, 'needs at least one distro'),
    staging: z
      .object({ tags: z.record(z.string(), z.string()).default({}), batchSize: z.number().int().positive().default(1) })
      .strict()
      .optional(),
    stepTimeoutSeconds: z.number().int().positive().default(1800),
    /** How long a run with a failed stage waits for an operator's `retry` or `abort` before it fails. */
    operatorWindowHours: z.number().positive().default(168),
    /** How long a run waits for `approve`/`reject` before it ends `expired` with nothing promoted. */
    approvalTimeoutHours: z.number().positive().default(72),
    /** The built-in packager: the `package` step installs into $CONVEYOR_ROOT (e.g.
     * `make install DESTDIR=$CONVEYOR_ROOT`) and Conveyor builds the .deb/.rpm from that tree. */
    packaging: z
      .object({
        builtin: z
          .object({
            name: z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'must be a valid package name (lowercase)'),
            maintainer: z.string().min(1),
            description: z.string().min(1),
            /** `all`/`noarch` for architecture-independent packages; default: the distro's arch. */
            arch: z.string().optional(),
            depends: z
              .object({ deb: z.array(z.string()).default([]), rpm: z.array(z.string()).default([]) })
              .strict()
              .default({ deb: [], rpm: [] }),
          })
          .strict(),
      })
      .strict()
      .optional(),
    /** How many builds per package a channel keeps; older ones are removed from the repository. */
    retention: z
      .object({ keepBuilds: z.number().int().min(1).default(10) })
      .strict()
      .default({ keepBuilds: 10 }),
    sandbox,
  })
  .strict();

export const conveyorSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().default('localhost:7233'),
        namespace: z.string().default('default'),
        /** The orchestrator's task queue (pipelines and stage children). */
        taskQueue: z.string().min(1).default('conveyor'),
        /** Temporal Cloud / secured clusters: the API key is read from this env var, never from the file. */
        apiKeyEnv: envName.optional(),
        tls: z
          .object({ certFile: z.string().optional(), keyFile: z.string().optional(), caFile: z.string().optional() })
          .strict()
          .optional(),
        uiUrl: z.string().default('http://localhost:8233'),
      })
      .strict()
      .default({
        address: 'localhost:7233',
        namespace: 'default',
        taskQueue: 'conveyor',
        uiUrl: 'http://localhost:8233',
      }),
    aws: z
      .object({ region: z.string().default('us-east-1'), endpoint: z.url().optional() })
      .strict()
      .default({ region: 'us-east-1' }),
    github: z
      .object({
        webhookSecretEnv: envName.default('GITHUB_WEBHOOK_SECRET'),
        tokenEnv: envName.default('GITHUB_TOKEN'),
        /** REST API base URL for commit statuses; GitHub Enterprise Server: https://HOST/api/v3. */
        apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.github.com'),
      })
      .strict()
      .default({
        webhookSecretEnv: 'GITHUB_WEBHOOK_SECRET',
        tokenEnv: 'GITHUB_TOKEN',
        apiUrl: 'https://api.github.com',
      }),
    /** The webhook API (api/main.ts). */
    api: z
      .object({
        /** Larger bodies are refused with 413 without being read; GitHub caps payloads at 25 MB. */
        maxBodyBytes: z.number().int().positive().default(26_214_400),
        /** Verified pushes wait here while Temporal is unreachable; relative to this file. Must
         * survive a restart (not a tmpfs); API instances on one host may share it. */
        spoolDir: z.string().min(1).default('.conveyor/spool'),
        /** How long a webhook waits for Temporal to accept a start before the push is spooled. */
        startTimeoutMs: z.number().int().positive().max(8000).default(5000),
      })
      .strict()
      .default({ maxBodyBytes: 26_214_400, spoolDir: '.conveyor/spool', startTimeoutMs: 5000 }),
    signing: z.object({ keyFile: z.string().optional(), keyEnv: envName.optional() }).strict().optional(),
    storage: z
      .object({
        artifacts: s3Url,
        staging: s3Url,
        production: s3Url,
        /** Where hosts and users read the repository buckets over HTTP (a CDN, a website endpoint).
         * Default: `<aws.endpoint>/<bucket>` locally, `https://<bucket>.s3.<region>.amazonaws.com` on AWS. */
        publicUrls: z.object({ staging: z.url().optional(), production: z.url().optional() }).strict().optional(),
      })
      .strict(),
    distros: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'distro names are lowercase'),
      z
        .object({
          format: z.enum(['deb', 'rpm']),
          codename: z.string().optional(),
          arch: z.string().min(1),
        })
        .strict(),
    ),
    workspace: z.string().optional(),
    /** The build workers' sandbox (activities/exec/sandbox.ts): the unprivileged uid and gid steps
     * run as when the builder runs as root. Never 0; a uid of its own (no other process uses it)
     * keeps RLIMIT_NPROC meaningful where cgroups are unavailable. */
    sandbox: z
      .object({
        uid: z.number().int().min(1, 'must not be 0: steps never run as root').default(65534),
        gid: z.number().int().min(1, 'must not be 0: steps never run as root').default(65534),
      })
      .strict()
      .default({ uid: 65534, gid: 65534 }),
    /** Staging hosts: `hostsDir` only on the local stack (hosts are Debian roots there; leave it
     * unset in production); `ssh` settings for hosts tagged ConveyorExecutor=ssh. */
    fleet: z
      .object({
        hostsDir: z.string().optional(),
        ssh: z
          .object({
            keyFile: z.string().optional(),
            knownHostsFile: z.string().optional(),
            user: z.string().optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    repositories: z.array(repository),
  })
  .strict()
  .superRefine((cfg, ctx) => {
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

export type ConveyorConfig = z.infer<typeof conveyorSchema> & {
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

export type Env = Record<string, string | undefined>;

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

/** Loads conveyor.yml. Env TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AWS_ENDPOINT_URL, AWS_REGION win over the file. */
export function loadConfig(file: string, env: Env = process.env): ConveyorConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  const parsed = parseYamlWithSchema(file, text, conveyorSchema);
  const dir = path.dirname(file);
  const cfg: ConveyorConfig = { ...parsed, file };
  if (env.TEMPORAL_ADDRESS) cfg.temporal = { ...cfg.temporal, address: env.TEMPORAL_ADDRESS };
  if (env.TEMPORAL_NAMESPACE) cfg.temporal = { ...cfg.temporal, namespace: env.TEMPORAL_NAMESPACE };
  if (env.AWS_ENDPOINT_URL) cfg.aws = { ...cfg.aws, endpoint: env.AWS_ENDPOINT_URL };
  if (env.AWS_REGION) cfg.aws = { ...cfg.aws, region: env.AWS_REGION };
  if (cfg.signing?.keyFile) cfg.signing = { ...cfg.signing, keyFile: path.resolve(dir, cfg.signing.keyFile) };
  if (cfg.workspace) cfg.workspace = path.resolve(dir, cfg.workspace);
  if (cfg.fleet?.hostsDir) cfg.fleet = { ...cfg.fleet, hostsDir: path.resolve(dir, cfg.fleet.hostsDir) };
  cfg.repositories = cfg.repositories.map((r) => ({ ...r, cloneUrl: resolveCloneUrl(r.cloneUrl, dir) }));
  return cfg;
}

/** URLs and scp-like remotes stay as they are; a plain path is taken relative to the config file. */
function resolveCloneUrl(url: string, dir: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url)) return url;
  return path.resolve(dir, url);
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
  config: Pick<ConveyorConfig, 'distros' | 'storage' | 'aws' | 'temporal'>,
  repo: RepositoryConfig,
  rule: BranchRule,
): RepositorySpec {
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
    builtinPackage: repo.packaging?.builtin,
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
  };
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
