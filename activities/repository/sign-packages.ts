// signPackages: the package stage's trusted step (issue 13, "the same bytes, staging to
// production"). Builders hold no signing key, so the rpms they store are unsigned; this activity,
// on the orchestrator's queue, signs each one once and stores the signed file as the build's
// artifact at `<prefix>signed/<fingerprint>/packages/<build path>/<distro>/<file>`. Every publish
// (staging, production, a rollback) then uploads exactly that file: its SHA-256 is the one the
// package stage result records. debs pass through unchanged (apt signs the index, not the file).
// Beside each signed rpm it stores the rpm's YUM index facts (rpm-index-facts.ts), made by one
// createrepo_c over the build's signed rpms, so publishes need not download and read the rpms.
//
// The references come from a build worker's result, so nothing in them is taken on trust: each
// key must be exactly the one the package stage stores for this build (repository, branch,
// commit, build, distro, file), the bytes must hash as the reference says, and the rpm must declare
// the name, version and arch it claims. Signing is not reproducible (the signature holds a time), so
// the store is write-once: a retry finds the first attempt's file and keeps it, after checking that
// it verifies against our key alone and is the builder's rpm with only a signature added (whoever
// wrote it: the builders may write to the artifacts bucket).
import fs from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { ArtifactRef, RepositorySpec } from '../../common/types';
import { identityMetadata, packageKey } from '../packaging/packaging-env';
import { storeObject } from '../packaging/store-object';
import type { ActivityScope } from './activity-scope';
import { fetchArtifact } from './artifacts';
import { RepositoryFailure, nonRetryable } from './failures';
import type { Signer } from './gpg';
import { rpmContentDigests, rpmSignatureProblem } from './rpm-signature';
import { readRpmIndexFacts, yumIndexKey } from './rpm-index-facts';
import { downloadToFile, getBytes, sha256Hex } from './s3-objects';
import { checkRpm } from './yum-format';

export interface SignPackagesInput {
  /** The run's repository, branch, commit and build number (the package stage's own input). */
  repository: RepositorySpec;
  branch: string;
  sha: string;
  build: number;
  distro: string;
  /** What buildPackages returned for this distro. */
  artifacts: ArtifactRef[];
}

export interface SignPackagesResult {
  /** The same references, rpms replaced by their signed files (key, sha256, size, signer, unsigned). */
  artifacts: ArtifactRef[];
}

export interface SignPackagesDeps {
  s3: S3Client;
  artifactsBucket: string;
  /** '' or a prefix ending in '/'. */
  artifactsPrefix: string;
  signer: Signer;
  dir: string;
  scope: ActivityScope;
}

/** Where the signed copy of the artifact at `unsignedKey` lives. */
export function signedKey(prefix: string, fingerprint: string, unsignedKey: string): string {
  return `${prefix}signed/${fingerprint}/${unsignedKey.slice(prefix.length)}`;
}

const FILE = /^[A-Za-z0-9][A-Za-z0-9._+~-]*\.(deb|rpm)$/;

function checkRef(deps: SignPackagesDeps, input: SignPackagesInput, ref: ArtifactRef): void {
  const problems: string[] = [];
  if (typeof ref.file !== 'string' || !FILE.test(ref.file))
    problems.push(`unsafe file name ${JSON.stringify(ref.file)}`);
  else if (ref.key !== packageKey(deps.artifactsPrefix, input, input.distro, ref.file))
    problems.push(`key ${JSON.stringify(ref.key)} is not where the package stage stores this build's ${ref.file}`);
  if (ref.distro !== input.distro) problems.push(`built for distro ${JSON.stringify(ref.distro)}`);
  if (ref.format !== 'deb' && ref.format !== 'rpm') problems.push(`format ${JSON.stringify(ref.format)}`);
  else if (!ref.file?.endsWith(`.${ref.format}`)) problems.push(`a .${ref.format} named ${ref.file}`);
  if (!/^[0-9a-f]{64}$/.test(String(ref.sha256))) problems.push('sha256 is not 64 lowercase hex digits');
  if (!Number.isSafeInteger(ref.size) || ref.size < 0) problems.push(`size ${JSON.stringify(ref.size)}`);
  if (ref.signer !== undefined || ref.unsigned !== undefined) problems.push('already claims a signature');
  if (problems.length > 0) {
    throw nonRetryable(
      RepositoryFailure.BadPackage,
      `cannot sign artifact ${JSON.stringify(ref.key)} of ${input.repository.name} build ${input.build}: ${problems.join('; ')}`,
      { key: ref.key },
    );
  }
}

export async function signPackages(deps: SignPackagesDeps, input: SignPackagesInput): Promise<SignPackagesResult> {
  const { signer, scope } = deps;
  const signal = scope.signal;
  for (const ref of input.artifacts) checkRef(deps, input, ref);
  const out: ArtifactRef[] = [];
  /** The rpms signed (or kept) here, by their place in `out`, with the local copy of the stored bytes. */
  const signedHere: { at: number; file: string; ref: ArtifactRef }[] = [];
  for (const [i, ref] of input.artifacts.entries()) {
    if (ref.format !== 'rpm') {
      out.push(ref);
      continue;
    }
    scope.heartbeat({ phase: 'sign', done: i, total: input.artifacts.length });
    const dir = path.join(deps.dir, String(i));
    await fs.promises.mkdir(dir);
    const unsigned = path.join(dir, `unsigned-${ref.file}`);
    await fetchArtifact(deps.s3, deps.artifactsBucket, ref, unsigned, signal);
    await checkRpm(unsigned, ref, signal);
    const digests = await rpmContentDigests(unsigned, signal);
    if (!digests) throw nonRetryable(RepositoryFailure.BadPackage, `${ref.key}: rpm cannot read its digests`);

    const signed = path.join(dir, ref.file);
    await fs.promises.copyFile(unsigned, signed);
    await signer.signRpms([signed]);
    const key = signedKey(deps.artifactsPrefix, signer.fingerprint, ref.key);
    const ours = await problemOf(deps, signed, digests);
    if (ours) throw new Error(`${ref.key}: the rpm just signed does not verify: ${ours}`); // retried
    const stored = await storeObject(
      deps.s3,
      deps.artifactsBucket,
      key,
      { file: signed },
      {
        contentType: 'application/x-rpm',
        metadata: {
          'package-name': ref.name,
          'package-version': ref.version,
          'package-arch': ref.arch,
          signer: signer.fingerprint,
          'unsigned-sha256': ref.sha256,
        },
        owner: identityMetadata(input),
        signal,
      },
    );
    // The local copy of the stored bytes: ours, or the earlier attempt's once checked.
    let local = signed;
    if (!stored.written) {
      // Kept from an earlier attempt, or written by someone else: check what is there.
      const kept = path.join(dir, `kept-${ref.file}`);
      local = kept;
      const got = await downloadToFile(deps.s3, deps.artifactsBucket, key, kept, signal);
      const problem = !got
        ? 'it vanished'
        : got.sha256 !== stored.sha256
          ? `it hashes to ${got.sha256}, its metadata says ${stored.sha256}`
          : await problemOf(deps, kept, digests);
      if (problem) {
        throw nonRetryable(
          RepositoryFailure.ArtifactMismatch,
          `s3://${deps.artifactsBucket}/${key} already holds a file that is not ${ref.key} signed by ${signer.fingerprint}: ` +
            `${problem}. Refusing to publish it; remove the object and retry the package stage`,
          { key, unsigned: ref.key },
        );
      }
    }
    scope.info('signed rpm at package time', { key, sha256: stored.sha256, signer: signer.fingerprint });
    const signedRef: ArtifactRef = {
      ...ref,
      key,
      sha256: stored.sha256,
      size: stored.size,
      signer: signer.fingerprint,
      unsigned: { key: ref.key, sha256: ref.sha256, size: ref.size },
    };
    // Only the stored bytes stay (for the index facts below), until the caller removes deps.dir.
    for (const f of [unsigned, signed]) if (f !== local) await fs.promises.rm(f, { force: true });
    out.push(signedRef);
    signedHere.push({ at: out.length - 1, file: local, ref: signedRef });
  }
  // The index facts of every signed rpm, from one createrepo_c over all of them.
  scope.heartbeat({ phase: 'index facts', total: signedHere.length });
  const facts = await readRpmIndexFacts(signedHere, deps.dir, signal);
  for (const [j, { at, ref }] of signedHere.entries()) {
    const yumIndex = await storeYumIndex(deps, input, ref, facts[j]);
    if (yumIndex) out[at] = { ...ref, yumIndex };
  }
  return { artifacts: out };
}

/** Stores what the YUM index needs from the signed rpm beside it (rpm-index-facts.ts: publishes
 * then copy the pool file without downloading it) and returns the reference's pointer. The facts
 * (`bytes`) are made from the local copy of the stored bytes, and are a function of those bytes.
 * Write-once, like the rpm: a retry finds the first attempt's facts and points at them only if they are byte
 * for byte the ones it made (anything else at the key, planted or from another createrepo_c, is
 * not used: the publishes then download the rpm, as for runs recorded before). */
async function storeYumIndex(
  deps: SignPackagesDeps,
  input: SignPackagesInput,
  ref: ArtifactRef,
  bytes: Buffer,
): Promise<ArtifactRef['yumIndex']> {
  const signal = deps.scope.signal;
  const key = yumIndexKey(ref.key);
  let problem: string | undefined;
  try {
    const put = await storeObject(
      deps.s3,
      deps.artifactsBucket,
      key,
      { bytes },
      { contentType: 'application/json', owner: identityMetadata(input), signal },
    );
    const stored = put.written ? bytes : await getBytes(deps.s3, deps.artifactsBucket, key, signal);
    if (!stored) problem = 'they vanished';
    else if (!stored.equals(bytes)) problem = `s3://${deps.artifactsBucket}/${key} holds other facts than the file's`;
  } catch (err) {
    // An object another build's metadata (or none) names: not adopted, and not the rpm's fault.
    if (!(err instanceof ApplicationFailure && err.type === FailureType.ArtifactMismatch && err.nonRetryable))
      throw err;
    problem = err.message;
  }
  if (problem) {
    deps.scope.info(`${ref.file}: no index facts (${problem}); publishes will download it`, { key });
    return undefined;
  }
  return { key, sha256: sha256Hex(bytes) };
}

/** Why `file` is not the builder's rpm (same content digests) signed by our key. */
async function problemOf(deps: SignPackagesDeps, file: string, digests: string): Promise<string | undefined> {
  const sig = await rpmSignatureProblem(file, deps.signer, deps.scope.signal);
  if (sig) return sig;
  const now = await rpmContentDigests(file, deps.scope.signal);
  return now === digests
    ? undefined
    : `its content digests ${now ?? '(unreadable)'} differ from the unsigned rpm's ${digests}`;
}
