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
import { readState } from './repository-state';
import { compareDebVersions, compareRpmVersions } from './version-compare';
import type { DistroSpec } from '../../common/types';
import type {
  Environment,
  PublishDocsInput,
  PublishDocsResult,
  PublishPackagesInput,
  PublishPackagesResult,
  RepositoryTarget,
} from './types';
import { yumFormat } from './yum-format';

export { generateSigningKey, publicKeyOf } from './gpg';
export { RepositoryFailure } from './failures';
export { PUBLIC_KEY_PATH } from './publish-repository';
export type * from './types';

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
  buckets: { staging: string; production: string };
  /** The armored private key; read at each publish, never logged. */
  signingKey: () => string;
  /** Scratch space for downloads and signing; default the OS temp dir. */
  workDir?: string;
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

function bucketOf(deps: RepositoryDeps, environment: Environment): string {
  const bucket = (deps.buckets as Record<string, string | undefined>)[environment];
  if (!bucket) throw nonRetryable(RepositoryFailure.BadConfig, `unknown environment ${JSON.stringify(environment)}`);
  return bucket;
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
  const scratch = async () => {
    const root = deps.workDir ?? path.join(os.tmpdir(), 'conveyor-repository');
    await fs.promises.mkdir(root, { recursive: true });
    return fs.promises.mkdtemp(path.join(root, 'publish-'));
  };

  return {
    /** Adds the artifacts built for `distro` to the channel's repository in the environment's
     * bucket, applies retention, re-signs the index. Idempotent; safe to retry after a crash. */
    publishPackages: (input: PublishPackagesInput): Promise<PublishPackagesResult> =>
      inScope(async (scope) => {
        checkTarget(input);
        const bucket = bucketOf(deps, input.environment);
        const dir = await scratch();
        try {
          const signer = await openSigner(readSigningKey(deps), scope.signal);
          try {
            const format = input.distroSpec.format === 'deb' ? aptFormat(input) : yumFormat(input);
            return await publishRepository(
              { s3: deps.s3, bucket, artifactsBucket: deps.artifactsBucket, signer, dir, scope },
              format,
              input,
            );
          } finally {
            await signer.close();
          }
        } finally {
          await fs.promises.rm(dir, { recursive: true, force: true });
        }
      }),

    /** The versions of `name` a channel holds now (newest first), from its state manifest: what
     * promotion compares against so an older build never replaces a newer one unasked. */
    publishedVersions: (input: PublishedVersionsInput): Promise<{ versions: string[] }> =>
      inScope(async (scope) => {
        checkTarget(input);
        const format = input.distroSpec.format === 'deb' ? aptFormat(input) : yumFormat(input);
        const state = await readState(
          deps.s3,
          bucketOf(deps, input.environment),
          format.stateKey,
          format.format,
          scope.signal,
        );
        const cmp = input.distroSpec.format === 'deb' ? compareDebVersions : compareRpmVersions;
        const versions = [...new Set(state.packages.filter((p) => p.name === input.name).map((p) => p.version))].sort(
          (a, b) => cmp(b, a),
        );
        return { versions };
      }),

    /** Copies a docs site to `docs/<owner>/<repo>/<version>/` and points the channel at it. */
    publishDocs: (input: PublishDocsInput): Promise<PublishDocsResult> =>
      inScope((scope) =>
        publishDocsSite(
          { s3: deps.s3, artifactsBucket: deps.artifactsBucket, bucket: bucketOf(deps, input.environment), scope },
          input,
        ),
      ),
  };
}

export type RepositoryActivities = ReturnType<typeof createRepositoryActivities>;
