// buildPackages: one distro's packages of one build. Checks out the exact sha, works out the
// project version, runs the repository's `package` step (or stages a tree for the built-in
// packager), validates every .deb/.rpm the step left in CONVEYOR_OUT — including that its name is
// one of the repository's `packages` — and stores them in the artifacts bucket at
// `packages/<owner>/<repo>/<branch>/<build>/<commit>/<distro>/<file>` with that identity in the
// object's metadata and the reference.
//
// Only refs travel on (key, sha256, size, name, version, arch, identity): workflow histories stay
// small, and every later copy is checked against the sha256 recorded here. Re-running the stage for
// the same build stores nothing new: keys that exist keep their first bytes (see store-object.ts),
// so a build has one set of packages however often its stage runs; an object at the key that
// another commit (or nobody) recorded is refused, never adopted.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { notOwnedMessage, ownedPackages } from '../../common/package-names';
import type { ArtifactRef, DistroSpec, RepositorySpec } from '../../common/types';
import { lastLines, withStepWorkspace, type RunStepDeps } from '../exec/run-step';
import { builtinPackage } from './builtin-package';
import { inspectPackage, packageFormatOf, type PackageFacts } from './inspect-package';
import { buildPath, identityMetadata, identityOf, packageKey, packagingEnv } from './packaging-env';
import { commitEpoch, projectVersion } from './project-version';
import { aptIndexKey, parseDebIndexFacts, readDebIndexFacts } from '../repository/deb-index-facts';
import { getBytes } from '../repository/s3-objects';
import { sha256Hex, storeObject } from './store-object';

export interface BuildPackagesInput {
  pipelineId: string;
  stageWorkflowId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  distro: string;
  distroSpec: DistroSpec;
  build: number;
}

export interface BuildPackagesResult {
  /** The project version, e.g. 1.0.0; packages carry `<version>-<build>`. */
  version: string;
  build: number;
  artifacts: ArtifactRef[];
  logKey: string;
  tail: string;
}

/** Package file names become object keys and URLs in repositories: a conservative alphabet. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]*\.(deb|rpm)$/;

export function createBuildPackages(deps: RunStepDeps) {
  return async function buildPackages(input: BuildPackagesInput): Promise<BuildPackagesResult> {
    const { repository, distro, distroSpec } = input;
    const command = repository.steps.package;
    if (!command) {
      throw ApplicationFailure.nonRetryable(
        `repository ${repository.name} has no package step (steps.package in conveyor.yml)`,
        FailureType.BadConfig,
      );
    }
    buildPath(input); // refuses a bad build number, repository name or commit before any work
    const owned = ownedPackages(repository);
    const step = {
      stageWorkflowId: input.stageWorkflowId,
      step: 'package',
      cloneUrl: repository.cloneUrl,
      sha: input.sha,
      repository: repository.name,
      sandbox: repository.sandbox,
    };
    return withStepWorkspace(deps, step, async (ws) => {
      const signal = ws.hooks.signal;
      const { version, source } = await projectVersion(ws.src, repository.cloneUrl, input.sha, signal);
      const epoch = await commitEpoch(ws.src, input.sha, signal);
      ws.note(
        `version ${version} (from ${source}); packages of build ${input.build} must be ${version}-${input.build}`,
      );
      // The built-in packager's staging root: written by the step, read back by us afterwards.
      const root = repository.builtinPackage ? await ws.writableDir('root') : undefined;
      const env = packagingEnv(input, version, epoch, {
        CONVEYOR_DISTRO: distro,
        CONVEYOR_FORMAT: distroSpec.format,
        CONVEYOR_ARCH: distroSpec.arch,
        ...(distroSpec.codename ? { CONVEYOR_CODENAME: distroSpec.codename } : {}),
        ...(root ? { CONVEYOR_ROOT: root.inside } : {}),
      });
      ws.hooks.log.info('running package step', { distro, sha: input.sha, version, build: input.build });
      const outcome = await ws.run(command, env, repository.stepTimeoutSeconds);

      if (repository.builtinPackage && root) {
        ws.hooks.heartbeat({ phase: 'builtin' });
        const scratch = path.join(ws.dir, 'builtin');
        fs.mkdirSync(scratch);
        await builtinPackage({
          spec: repository.builtinPackage,
          distro,
          distroSpec,
          version,
          build: input.build,
          root: root.host,
          out: ws.out,
          scratch,
          sourceDateEpoch: epoch,
          signal,
          note: ws.note,
        });
      }

      const found = collect(ws.out);
      if (found.ignored.length > 0)
        ws.note(`ignored in $CONVEYOR_OUT (not .deb/.rpm files): ${found.ignored.join(', ')}`);
      if (found.packages.length === 0) {
        throw ApplicationFailure.nonRetryable(
          `the package step wrote no ${distroSpec.format} package for ${distro} into $CONVEYOR_OUT ` +
            `(expected a .${distroSpec.format} file at its top level` +
            `${found.ignored.length > 0 ? `; found only ${found.ignored.join(', ')}` : '; it was empty'})`,
          FailureType.NoPackages,
        );
      }

      const checked: PackageFacts[] = [];
      for (const file of found.packages) {
        ws.hooks.heartbeat({ phase: 'inspect', file });
        if (!FILE_NAME.test(file)) {
          throw ApplicationFailure.nonRetryable(
            `package ${JSON.stringify(file)} for ${distro}: file names may hold only letters, digits and . _ + ~ -`,
            FailureType.BadPackage,
          );
        }
        const facts = await inspectPackage(
          path.join(ws.out, file),
          { distro, distroSpec, version, build: input.build },
          signal,
        );
        if (!owned.includes(facts.name)) {
          throw ApplicationFailure.create({
            type: FailureType.PackageNotOwned,
            nonRetryable: true,
            message: `${file} for ${distro}: ${notOwnedMessage(facts.name, repository.name, owned)}`,
            details: [{ file, name: facts.name, repository: repository.name, packages: owned }],
          });
        }
        const twin = checked.find((c) => c.name === facts.name && c.arch === facts.arch);
        if (twin) {
          throw ApplicationFailure.nonRetryable(
            `package ${file} for ${distro}: ${twin.file} is the same package (${facts.name} ${facts.arch}); ` +
              'a repository holds one file per name, version and architecture',
            FailureType.BadPackage,
          );
        }
        checked.push(facts);
        ws.note(`${file}: ${facts.name} ${facts.version} ${facts.arch}, valid`);
      }

      const artifacts: ArtifactRef[] = [];
      for (const [i, facts] of checked.entries()) {
        ws.hooks.heartbeat({ phase: 'upload', done: i });
        const key = packageKey(deps.artifactsPrefix, input, distro, facts.file);
        const stored = await storeObject(
          deps.s3,
          deps.artifactsBucket,
          key,
          { file: path.join(ws.out, facts.file) },
          {
            contentType: facts.format === 'deb' ? 'application/vnd.debian.binary-package' : 'application/x-rpm',
            metadata: { 'package-name': facts.name, 'package-version': facts.version, 'package-arch': facts.arch },
            owner: identityMetadata(input),
            signal,
          },
        );
        const meta = stored.metadata;
        if (!stored.written && meta['package-version'] && meta['package-version'] !== facts.version) {
          throw ApplicationFailure.nonRetryable(
            `${key} already holds ${meta['package-version']} from an earlier run of build ${input.build}, ` +
              `but this run built ${facts.version}; a build number must not be reused for another version`,
            FailureType.ArtifactMismatch,
          );
        }
        ws.note(
          stored.written
            ? `stored ${facts.file} at ${key} (sha256 ${stored.sha256})`
            : `kept ${key} from an earlier run of this build and commit (sha256 ${stored.sha256}); this run's bytes discarded`,
        );
        const ref: ArtifactRef = {
          key,
          sha256: stored.sha256,
          size: stored.size,
          name: meta['package-name'] ?? facts.name,
          version: meta['package-version'] ?? facts.version,
          arch: meta['package-arch'] ?? facts.arch,
          format: facts.format,
          distro,
          file: facts.file,
          ...identityOf(input),
        };
        if (facts.format === 'deb') {
          ws.hooks.heartbeat({ phase: 'index facts', done: i });
          const aptIndex = await storeAptIndex(deps, ref, path.join(ws.out, facts.file), stored.written, {
            owner: identityMetadata(input),
            signal,
            note: ws.note,
          });
          if (aptIndex) ref.aptIndex = aptIndex;
        }
        artifacts.push(ref);
      }
      return { version, build: input.build, artifacts, logKey: ws.logKey, tail: lastLines(outcome.tail, 20) };
    });
  };
}

/** Stores what the APT index needs from a .deb beside it (deb-index-facts.ts: publishes then copy
 * the pool file without downloading it) and returns the reference's pointer. Only the attempt
 * that stored the .deb stores its facts, from the very file it stored; an attempt that kept an
 * earlier one's .deb points at that attempt's facts if they describe it, else at none (the
 * publishes then download the .deb, as for runs recorded before). */
async function storeAptIndex(
  deps: RunStepDeps,
  ref: ArtifactRef,
  local: string,
  written: boolean,
  o: { owner: Record<string, string>; signal?: AbortSignal; note: (line: string) => void },
): Promise<ArtifactRef['aptIndex']> {
  const key = aptIndexKey(ref.key);
  let stored: Buffer | undefined;
  if (written) {
    const bytes = await readDebIndexFacts(local, ref, o.signal);
    const put = await storeObject(
      deps.s3,
      deps.artifactsBucket,
      key,
      { bytes },
      { contentType: 'application/json', owner: o.owner, signal: o.signal },
    );
    // Read back only when another attempt's object was kept in place of ours.
    if (put.written) stored = bytes;
  }
  stored ??= await getBytes(deps.s3, deps.artifactsBucket, key, o.signal);
  const facts = stored ? parseDebIndexFacts(stored, ref) : 'none was stored';
  if (!stored || typeof facts === 'string') {
    o.note(
      `${ref.file}: no index facts (${typeof facts === 'string' ? facts : 'unreadable'}); publishes will download it`,
    );
    return undefined;
  }
  return { key, sha256: sha256Hex(stored) };
}

/** Top-level regular files of CONVEYOR_OUT named .deb/.rpm; everything else is reported, not used. */
function collect(out: string): { packages: string[]; ignored: string[] } {
  const packages: string[] = [];
  const ignored: string[] = [];
  for (const name of fs.readdirSync(out).sort()) {
    const st = fs.lstatSync(path.join(out, name));
    if (st.isFile() && packageFormatOf(name)) packages.push(name);
    else ignored.push(st.isDirectory() ? `${name}/` : name);
  }
  return { packages, ignored };
}
