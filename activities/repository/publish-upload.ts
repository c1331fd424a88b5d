// Steps 2–4 of a publish (publish-repository.ts): make the packages of the plan (download the
// artifacts that must be made, check and ingest them), upload the pool, then the index files,
// hashed ones before plain ones. Nothing here is visible to a client yet: pool files and hashed
// indexes have new names, and plain indexes are only trusted through a Release that names them.
import path from 'node:path';
import { fetchArtifact } from './artifacts';
import { fetchDebIndexFacts } from './deb-index-facts';
import { fetchRpmIndexFacts } from './rpm-index-facts';
import type { PublishPlan } from './publish-plan';
import { identity } from './publish-plan';
import type { Candidate, EngineDeps, IndexFile, Ingested, RepositoryFormat } from './publish-types';
import type { IndexRecord, PublishedPackage } from './repository-state';
import { RepositoryFailure, nonRetryable } from './failures';
import { MAX_COPY_BYTES, copyChecked, mapLimit, md5Hex, sameObject, sha256Hex, type ListedObject } from './s3-objects';

const PARALLEL = 8;

/** Downloads and ingests what the plan needs; returns the generation's packages and the uploads. */
export async function makePackages(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  plan: PublishPlan,
): Promise<{ packages: PublishedPackage[]; ingested: Ingested[] }> {
  const { scope } = deps;
  scope.checkCancelled();
  let fetched = 0;
  const { s3, bucket } = deps.artifactsStore;
  const candidates = await mapLimit(plan.needed, 4, async (p, i): Promise<Candidate> => {
    const file = path.join(deps.dir, `${i}-${p.artifact.file}`);
    const source = { bucket, key: p.artifact.key };
    const download = () => fetchArtifact(s3, bucket, p.artifact, file, scope.signal);
    // The facts stand in for the download (deb-index-facts.ts, rpm-index-facts.ts); the file is
    // fetched only if the pool file cannot be a verified server-side copy. An rpm's facts are
    // used only when it is signed by the key this publish signs with (else it is signed here).
    const { aptIndex, yumIndex, signer } = p.artifact;
    const facts =
      fmt.format === 'apt' && aptIndex
        ? await fetchDebIndexFacts(s3, bucket, p.artifact, scope.signal).then((f) =>
            typeof f === 'string' ? f : { facts: f },
          )
        : fmt.format === 'yum' && yumIndex && signer === deps.signer.fingerprint
          ? await fetchRpmIndexFacts(s3, bucket, p.artifact, scope.signal).then((f) =>
              typeof f === 'string' ? f : { rpmFacts: f },
            )
          : undefined;
    if (typeof facts === 'object') {
      scope.heartbeat({ phase: 'facts', done: ++fetched, total: plan.needed.length });
      return { ref: p.artifact, key: p.key, source, ...facts, fetch: () => download().then(() => file) };
    }
    if (facts !== undefined) {
      scope.info(`publish: reading ${p.artifact.key} itself: its index facts cannot be used (${facts})`, {
        key: p.artifact.key,
      });
    }
    const hashes = await download();
    scope.heartbeat({ phase: 'download', done: ++fetched, total: plan.needed.length });
    return { ref: p.artifact, file, key: p.key, hashes, source };
  });
  const ingested = await fmt.ingest(candidates, {
    store: deps.store,
    listing: plan.listing,
    signer: deps.signer,
    dir: deps.dir,
    signal: scope.signal,
  });
  const made = new Map(ingested.map((x) => [identity(x.pkg), x.pkg]));
  return { packages: plan.kept.map((p) => made.get(identity(p)) ?? p), ingested };
}

/** Writes a write-once object: `IfNoneMatch: '*'`, or a delete first when the listing shows
 * other bytes at the key (damage, or an rpm signed by a previous key). */
async function writeOnce(
  deps: EngineDeps,
  listing: Map<string, ListedObject>,
  key: string,
  body: Buffer | { file: string },
  opts: { contentType: string; md5: string; metadata?: Record<string, string> },
): Promise<void> {
  const o = { ...opts, immutable: true };
  if (listing.has(key)) await deps.store.replaceOnce(key, body, o, deps.scope.signal);
  else await deps.store.putOnce(key, body, o, deps.scope.signal);
}

/** The pool: each file written once, by a server-side copy from the artifacts bucket when the
 * pool file is the artifact's own bytes (nothing goes up from here; S3 hashes the copy and a copy
 * of other bytes is refused), else uploaded. */
export async function uploadPool(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  plan: PublishPlan,
  ingested: Ingested[],
  uploaded: string[],
): Promise<void> {
  const uploads = ingested.filter((x): x is Ingested & Required<Pick<Ingested, 'upload'>> => x.upload !== undefined);
  let done = 0;
  await mapLimit(uploads, PARALLEL, async ({ pkg, upload, copyFrom }) => {
    const metadata: Record<string, string> = {
      sha256: pkg.sha256,
      'artifact-sha256': pkg.artifact.sha256,
      'artifact-key': pkg.artifact.key,
    };
    if (pkg.signer) metadata.signer = pkg.signer;
    const opts = { contentType: fmt.poolContentType, md5: pkg.md5, metadata };
    // Only a new file is copied (write-once, IfNoneMatch); a damaged one is replaced by writeOnce.
    // Above the multipart threshold the checked file goes up in parts (a copy that large would
    // need UploadPartCopy, and one CopyObject stops at 5 GB).
    const copied =
      copyFrom !== undefined &&
      !plan.listing.has(pkg.key) &&
      pkg.size <= Math.min(MAX_COPY_BYTES, deps.store.multipartThresholdBytes) &&
      (await copyToPool(deps, copyFrom, pkg, opts));
    if (!copied) {
      const file = typeof upload === 'string' ? upload : await upload();
      await writeOnce(deps, plan.listing, pkg.key, { file }, opts);
    }
    uploaded.push(pkg.key);
    deps.scope.heartbeat({ phase: 'pool', done: ++done, total: uploads.length });
  });
  deps.scope.checkCancelled();
}

/** True when the pool file is now a verified copy; false when it must be uploaded (module
 * comment of copyChecked). Other bytes at the source are refused as ArtifactMismatch. */
async function copyToPool(
  deps: EngineDeps,
  from: { bucket: string; key: string },
  pkg: PublishedPackage,
  opts: { contentType: string; metadata: Record<string, string> },
): Promise<boolean> {
  const to = { bucket: deps.store.bucket, key: `${deps.store.prefix}${pkg.key}` };
  const { s3 } = deps.artifactsStore;
  const got = await copyChecked(s3, from, to, { ...opts, immutable: true, sha256: pkg.sha256 }, deps.scope.signal);
  if (got.outcome === 'mismatch') {
    throw nonRetryable(
      RepositoryFailure.ArtifactMismatch,
      `artifact s3://${from.bucket}/${from.key} changed after it was checked: its copy to ${deps.store.url(pkg.key)} ` +
        `has SHA-256 ${got.sha256}, but the reference promises ${pkg.sha256}; the copy was deleted and nothing ` +
        'was published. Re-run the package stage',
      { key: from.key, expected: pkg.sha256, actual: got.sha256 },
    );
  }
  return got.outcome === 'copied';
}

export function recordOf(f: IndexFile): IndexRecord {
  return { key: f.key, sha256: sha256Hex(f.body), md5: md5Hex(f.body), size: f.body.length, hashed: f.hashed };
}

/** Index files not in place yet: by-hash/content-named ones first (write-once), then the plain
 * names, which a client only trusts through the Release that is written after them. */
export async function uploadIndexes(
  deps: EngineDeps,
  plan: PublishPlan,
  files: IndexFile[],
  uploaded: string[],
): Promise<IndexRecord[]> {
  const records = files.map(recordOf);
  const missing = files.filter(
    (_f, i) => !sameObject(plan.listing.get(records[i].key), records[i].size, records[i].md5),
  );
  deps.scope.heartbeat({ phase: 'index', total: missing.length });
  await mapLimit(
    missing.filter((f) => f.hashed),
    PARALLEL,
    async (f) => {
      await writeOnce(deps, plan.listing, f.key, f.body, { contentType: f.contentType, md5: md5Hex(f.body) });
      uploaded.push(f.key);
    },
  );
  deps.scope.checkCancelled();
  await mapLimit(
    missing.filter((f) => !f.hashed),
    PARALLEL,
    async (f) => {
      await deps.store.put(f.key, f.body, { contentType: f.contentType, immutable: false }, deps.scope.signal);
      uploaded.push(f.key);
    },
  );
  deps.scope.checkCancelled();
  return records;
}
