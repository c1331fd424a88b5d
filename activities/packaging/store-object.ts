// Write-once storage of build outputs in the artifacts bucket. A build's objects never change
// once written: a re-run of the stage (retry, operator rerun, a second attempt racing the first)
// keeps the stored object and reports its SHA-256, because the bytes of a rebuild differ
// (timestamps) and every later stage must see exactly the bytes that were stored first.
//
// An object is adopted only when its metadata names the same build (`owner`: repository, branch,
// commit, build): keys carry that identity, so anything else at the key was not written by a run
// of this build (a hand-made object, a bug, another commit) and adopting it would publish bytes
// nobody built from this commit. That is a non-retryable ArtifactMismatch naming both.
//
// Hazards: `IfNoneMatch: '*'` refuses to overwrite, but HEAD-then-PUT is not atomic, so a racing
// writer shows up as PreconditionFailed and we adopt its object (after the same check). The SHA-256 is recorded in the
// object's metadata and sent as ChecksumSHA256 (real S3 refuses bytes that do not match it);
// the local endpoint ignores that checksum, so the new object is also read back and hashed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';

export interface StoredObject {
  key: string;
  sha256: string;
  size: number;
  /** False when the key already held an object from an earlier run, which was kept. */
  written: boolean;
  /** The stored object's user metadata (the earlier run's, when kept). */
  metadata: Record<string, string>;
}

export interface StoreOptions {
  contentType?: string;
  /** Extra user metadata (lowercase keys); `sha256` is always set. */
  metadata?: Record<string, string>;
  /** The build identity (identityMetadata in packaging-env.ts): stored with the object, and an
   * object already at the key is adopted only when its metadata has exactly these values. */
  owner?: Record<string, string>;
  signal?: AbortSignal;
}

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Stores `body` (bytes or a file path) under `key` unless the key exists; see the module comment. */
export async function storeObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: { file: string } | { bytes: Buffer },
  opts: StoreOptions = {},
): Promise<StoredObject> {
  const existing = await headStored(s3, bucket, key, opts.signal);
  if (existing) return adopt(bucket, existing, opts.owner);

  const size = 'file' in body ? fs.statSync(body.file).size : body.bytes.length;
  const sha256 = 'file' in body ? await sha256OfFile(body.file) : sha256Hex(body.bytes);
  const metadata = { ...opts.metadata, ...opts.owner, sha256 };
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: 'file' in body ? fs.createReadStream(body.file) : body.bytes,
        ContentLength: size,
        ContentType: opts.contentType ?? 'application/octet-stream',
        ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
        Metadata: metadata,
        IfNoneMatch: '*',
      }),
      { abortSignal: opts.signal },
    );
  } catch (err) {
    if (httpStatus(err) === 412) {
      const raced = await headStored(s3, bucket, key, opts.signal);
      if (raced) return adopt(bucket, raced, opts.owner);
    }
    throw err;
  }
  const stored = await hashObject(s3, bucket, key, opts.signal);
  if (stored !== sha256) {
    // Ours, just written, and wrong: remove it, or every later run would adopt the bad bytes.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: opts.signal });
    throw ApplicationFailure.retryable(
      `s3://${bucket}/${key}: stored bytes hash to ${stored}, uploaded ${sha256}; removed, the upload will be retried`,
      FailureType.ArtifactMismatch,
    );
  }
  return { key, sha256, size, written: true, metadata };
}

/** `found` when its recorded identity is `owner`; otherwise the refusal (module comment). */
export function adopt(bucket: string, found: StoredObject, owner?: Record<string, string>): StoredObject {
  const problem = ownerProblem(found.metadata, owner);
  if (!problem) return found;
  throw ApplicationFailure.create({
    type: FailureType.ArtifactMismatch,
    nonRetryable: true,
    message:
      `s3://${bucket}/${found.key} already holds an object ${problem}; ` +
      'refusing to adopt bytes this commit did not build (remove the object if it is stray)',
    details: [{ key: found.key, recorded: pick(found.metadata), expected: owner }],
  });
}

/** Why `metadata` does not name the build `owner`, or undefined when it does. */
export function ownerProblem(
  metadata: Record<string, string>,
  owner: Record<string, string> | undefined,
): string | undefined {
  if (!owner) return undefined;
  const differs = Object.keys(owner).some((k) => metadata[k] !== owner[k]);
  if (!differs) return undefined;
  const recorded = metadata.commit ? `built by ${describe(metadata)}` : 'with no recorded commit';
  return `${recorded}, but this run builds ${describe(owner)}`;
}

const IDENTITY = ['repository', 'branch', 'commit', 'build'] as const;

function pick(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(IDENTITY.filter((k) => metadata[k] !== undefined).map((k) => [k, metadata[k]]));
}

/** `acme/widget branch "main" commit abc… build 7`. */
function describe(m: Record<string, string>): string {
  let branch = m.branch ?? '?';
  try {
    branch = decodeURIComponent(branch);
  } catch {
    // shown as recorded
  }
  return `${m.repository ?? '?'} branch ${JSON.stringify(branch)} commit ${m.commit} build ${m.build ?? '?'}`;
}

/** The stored object's ref, or undefined when the key is free. An object without our sha256
 * metadata (written by hand) is hashed, never replaced. */
async function headStored(
  s3: S3Client,
  bucket: string,
  key: string,
  signal?: AbortSignal,
): Promise<StoredObject | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    const metadata = head.Metadata ?? {};
    const sha256 = /^[0-9a-f]{64}$/.test(metadata.sha256 ?? '')
      ? metadata.sha256
      : await hashObject(s3, bucket, key, signal);
    return { key, sha256, size: head.ContentLength ?? 0, written: false, metadata };
  } catch (err) {
    if (httpStatus(err) === 404) return undefined;
    throw err;
  }
}

export async function hashObject(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<string> {
  const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  const hash = crypto.createHash('sha256');
  for await (const chunk of obj.Body as Readable) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function readObject(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<Buffer> {
  const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  return Buffer.from(await obj.Body!.transformToByteArray());
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
