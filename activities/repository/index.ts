// Repository activities: publish built packages into signed APT and YUM repositories and docs
// sites into the staging or production bucket. Dependencies are injected (shared/STYLE.md);
// workflows see only `typeof` the result through proxyActivities. The signing key is read through
// a function at each call, never kept in a result, a heartbeat or a log line.
// Calls for one repository (bucket + repoUrlPath/suite) must be serialised by the caller;
// everything else about crashes, retries and readers is handled here (publish-repository.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { activityScope, type ActivityScope } from './activity-scope';
import { aptFormat } from './apt-format';
import { RepositoryFailure, nonRetryable } from './failures';
import { openSigner } from './gpg';
import { publishDocsSite } from './publish-docs';
import { publishRepository } from './publish-repository';
import type { EngineDeps, RepositoryFormat } from './publish-types';
import { createRepoStore, type RepoStore } from './repo-store';
import { resignRelease } from './resign-release';
import { signPackages, type SignPackagesInput, type SignPackagesResult } from './sign-packages';
import { rewriteRepository } from './rewrite-repository';
import { packagesNamed } from './state-shards';
import { compareDebVersions, compareRpmVersions } from './version-compare';
import type { DistroSpec } from '../../common/types';
import type {
  Environment,
  LeaseRef,
  PublishDocsInput,
  PublishDocsResult,
  PublishPackagesInput,
  PublishPackagesResult,
  RepositoryTarget,
  ResignInput,
  ResignResult,
  RewriteRepositoryInput,
  RewriteRepositoryResult,
} from './types';
import { yumFormat } from './yum-format';
import { countingStore } from '../metrics';

export { generateSigningKey, publicKeyOf } from './gpg';
export { RepositoryFailure } from './failures';
export { PUBLIC_KEY_PATH } from './publish-repository';
export { listGenerations, readSnapshot } from './rewrite-repository';
export { aptFormat } from './apt-format';
export { yumFormat } from './yum-format';
export { createRepoStore } from './repo-store';
export type * from './types';
export type { SignPackagesInput, SignPackagesResult } from './sign-packages';

export interface PublishedVersionsInput {
  environment: 'staging' | 'production';
  channel: string;
  distro: string;
  distroSpec: DistroSpec;
  name: string;
}

export interface RepositoryDeps {
  s3: S3Client;
  artifactsBucket: string;
  /** The artifacts bucket's key prefix ('' or ending in '/'): signed rpms go beside the unsigned. */
  artifactsPrefix?: string;
  buckets: { staging: string; production: string };
  /** Key prefixes inside the buckets (`s3://bucket/prefix` → `prefix/`); default none. */
  prefixes?: { staging?: string; production?: string };
  /** How long files of a replaced generation stay (storage.keepGenerationsHours; default 24). */
  keepGenerationsHours?: number;
  /** Valid-Until of APT Releases, in days from signing, per environment (signing.validDays;
   * default 7). 0: no Valid-Until. */
  validDays?: Partial<Record<Environment, number>>;
  /** Files above this size are uploaded in parts (storage.multipartThresholdMB; default 64 MiB). */
  multipartThresholdBytes?: number;
  /** The clock; tests move it forward to see retention by time. */
  now?: () => Date;
  /** Called right before a switch (the first signed file): throws when the publish lock's lease
   * is no longer held (the lead wires it to the lock). */
  fence?: (input: { lease?: LeaseRef }) => Promise<void>;
  /** The armored private key; read at each publish, never logged. */
  signingKey: () => string;
  /** A rotation's new key, which signs the indexes beside `signingKey` (never the rpms) and is
   * published beside it; undefined outside a rotation. */
  nextSigningKey?: () => string | undefined;
  /** Scratch space for downloads and signing; default the OS temp dir. */
  workDir?: string;
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

export const DEFAULT_KEEP_GENERATIONS_HOURS = 24;
export const DEFAULT_VALID_DAYS = 7;

function bucketOf(deps: RepositoryDeps, environment: Environment): string {
  const bucket = (deps.buckets as Record<string, string | undefined>)[environment];
  if (!bucket) throw nonRetryable(RepositoryFailure.BadConfig, `unknown environment ${JSON.stringify(environment)}`);
  return bucket;
}

function storeOf(deps: RepositoryDeps, environment: Environment): RepoStore {
  const store = createRepoStore(deps.s3, bucketOf(deps, environment), deps.prefixes?.[environment] ?? '', {
    multipartThresholdBytes: deps.multipartThresholdBytes,
  });
  return countingStore(store, environment);
}

function formatOf(input: RepositoryTarget): RepositoryFormat {
  return input.distroSpec.format === 'deb' ? aptFormat(input) : yumFormat(input);
}

function checkTarget(input: RepositoryTarget): void {
  const problems: string[] = [];
  if (!NAME.test(input.channel)) problems.push(`channel ${JSON.stringify(input.channel)}`);
  if (!NAME.test(input.distro)) problems.push(`distro ${JSON.stringify(input.distro)}`);
  // `<codename>-<channel>` must name one suite only: a codename with a hyphen would let
  // bookworm + arm-unstable and bookworm-arm + unstable collide.
  const codename = input.distroSpec.codename ?? input.distro;
  if (input.distroSpec.format === 'deb' && !/^[a-z0-9][a-z0-9.]*$/.test(codename)) {
    problems.push(`codename ${JSON.stringify(codename)} (no hyphens; set distros.<name>.codename)`);
  }
  if (!/^[a-z0-9_]+$/.test(input.distroSpec.arch)) problems.push(`arch ${JSON.stringify(input.distroSpec.arch)}`);
  if (input.distroSpec.format !== 'deb' && input.distroSpec.format !== 'rpm') {
    problems.push(`format ${JSON.stringify(input.distroSpec.format)}`);
  }
  if (problems.length > 0) {
    throw nonRetryable(
      RepositoryFailure.BadConfig,
      `cannot publish: bad ${problems.join(', ')} (lowercase names only)`,
    );
  }
}

function readSigningKey(deps: RepositoryDeps): string {
  try {
    return deps.signingKey();
  } catch (err) {
    // The reader's message names the file or variable, never the key.
    throw nonRetryable(RepositoryFailure.BadConfig, `cannot read the signing key: ${(err as Error).message}`);
  }
}

/** The keys that sign indexes: the signing key, and a rotation's next key while one is configured. */
function readIndexKeys(deps: RepositoryDeps): string[] {
  const primary = readSigningKey(deps);
  try {
    const next = deps.nextSigningKey?.();
    return next ? [primary, next] : [primary];
  } catch (err) {
    // The reader's message names the file or variable, never the key.
    throw nonRetryable(RepositoryFailure.BadConfig, `cannot read the signing key: ${(err as Error).message}`);
  }
}

/** Runs `fn` in an activity scope. Whatever fails once cancellation was requested (a killed gpg
 * exits with SIGTERM, not an AbortError) is reported as the cancellation it is. */
async function inScope<T>(fn: (scope: ActivityScope) => Promise<T>): Promise<T> {
  const scope = activityScope();
  try {
    return await fn(scope);
  } catch (err) {
    if (scope.signal?.aborted) throw scope.signal.reason;
    throw err;
  } finally {
    scope.close();
  }
}

export function createRepositoryActivities(deps: RepositoryDeps) {
  const root = deps.workDir ?? path.join(os.tmpdir(), 'conveyor-repository');
  // Immutable state shards by SHA-256, kept across calls (state-shards.ts): a publish then reads
  // only what other workers changed since.
  const stateCache = path.join(root, 'state-cache');
  const scratch = async () => {
    await fs.promises.mkdir(root, { recursive: true });
    return fs.promises.mkdtemp(path.join(root, 'publish-'));
  };

  /** Runs `fn` with the engine's dependencies for the target: store, signer, scratch dir. */
  const withSigner = <T>(
    input: RepositoryTarget & { lease?: LeaseRef },
    fn: (engine: EngineDeps, format: RepositoryFormat) => Promise<T>,
  ): Promise<T> =>
    inScope(async (scope) => {
      checkTarget(input);
      const store = storeOf(deps, input.environment);
      const dir = await scratch();
      try {
        const signer = await openSigner(readIndexKeys(deps), scope.signal);
        try {
          const validDays = deps.validDays?.[input.environment] ?? DEFAULT_VALID_DAYS;
          const engine: EngineDeps = {
            store,
            artifactsStore: { s3: deps.s3, bucket: deps.artifactsBucket },
            signer,
            dir,
            stateCache,
            scope,
            keepGenerationsMs: (deps.keepGenerationsHours ?? DEFAULT_KEEP_GENERATIONS_HOURS) * 3_600_000,
            validMs: Math.round(validDays * 86_400_000),
            now: deps.now ?? (() => new Date()),
            fence: deps.fence && (() => deps.fence!(input)),
          };
          return await fn(engine, formatOf(input));
        } catch (err) {
          // A bucket that does not exist is configuration, not an outage: fail at once and say
          // which, instead of retrying for the minutes a storage outage gets.
          if ((err as { name?: string })?.name === 'NoSuchBucket') {
            throw nonRetryable(
              RepositoryFailure.BadConfig,
              `the ${input.environment} bucket ${bucketOf(deps, input.environment)} does not exist (storage.${input.environment}); create it, then retry`,
            );
          }
          throw err;
        } finally {
          await signer.close();
        }
      } finally {
        await fs.promises.rm(dir, { recursive: true, force: true });
      }
    });

  return {
    /** The package stage's trusted step: signs the build's rpms once and stores the signed files
     * as its artifacts (sign-packages.ts), so every publish uploads the same bytes. */
    signPackages: (input: SignPackagesInput): Promise<SignPackagesResult> =>
      inScope(async (scope) => {
        const dir = await scratch();
        try {
          const signer = await openSigner(readSigningKey(deps), scope.signal);
          try {
            return await signPackages(
              {
                s3: deps.s3,
                artifactsBucket: deps.artifactsBucket,
                artifactsPrefix: deps.artifactsPrefix ?? '',
                signer,
                dir,
                scope,
              },
              input,
            );
          } finally {
            await signer.close();
          }
        } finally {
          await fs.promises.rm(dir, { recursive: true, force: true });
        }
      }),

    /** Adds the artifacts built for `distro` to the channel's repository in the environment's
     * bucket, applies retention, re-signs the index. Idempotent; safe to retry after a crash. */
    publishPackages: (input: PublishPackagesInput): Promise<PublishPackagesResult> =>
      withSigner(input, (engine, format) => publishRepository(engine, format, input)),

    /** A new generation from an earlier one's snapshot (rollback) or without one version (remove):
     * published like a publish, fenced by the publish lock's lease. */
    rewriteRepository: (input: RewriteRepositoryInput): Promise<RewriteRepositoryResult> =>
      withSigner(input, (engine, format) => rewriteRepository(engine, format, input)),

    /** Re-signs the channel's live APT Release in place (same files, new Date and Valid-Until),
     * before it expires, with the configured keys. The caller holds the channel's publish lock.
     * YUM: nothing to do, unless `keys` (a rotation) asks for a new repomd.xml.asc. */
    resignRepository: (input: ResignInput): Promise<ResignResult> =>
      withSigner(input, (engine, format) => resignRelease(engine, format, { keys: input.keys })),

    /** The versions of `name` a channel holds now (newest first), from its state manifest: what
     * promotion compares against so an older build never replaces a newer one unasked. */
    publishedVersions: (input: PublishedVersionsInput): Promise<{ versions: string[] }> =>
      inScope(async (scope) => {
        checkTarget(input);
        const format = formatOf(input);
        const store = storeOf(deps, input.environment);
        // The head, one directory and one shard: not the whole channel.
        const named = await packagesNamed(store, format, input.name, { signal: scope.signal });
        const cmp = input.distroSpec.format === 'deb' ? compareDebVersions : compareRpmVersions;
        const versions = [...new Set(named.map((p) => p.version))].sort((a, b) => cmp(b, a));
        return { versions };
      }),

    /** Copies a docs site to `docs/<owner>/<repo>/<version>/` and points the channel at it. */
    publishDocs: (input: PublishDocsInput): Promise<PublishDocsResult> =>
      inScope((scope) =>
        publishDocsSite(
          { s3: deps.s3, artifactsBucket: deps.artifactsBucket, store: storeOf(deps, input.environment), scope },
          input,
        ),
      ),
  };
}

export type RepositoryActivities = ReturnType<typeof createRepositoryActivities>;
