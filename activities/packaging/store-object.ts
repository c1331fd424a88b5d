// Write-once storage of build outputs in the artifacts bucket. A build's objects never change
// once written: a re-run of the stage (retry, operator rerun, a second attempt racing the first)
// keeps the stored object and reports its SHA-256, because the bytes of a rebuild differ
// (timestamps) and every later stage must see exactly the bytes that were stored first.
//
// Hazards: `IfNoneMatch: '*'` refuses to overwrite, but HEAD-then-PUT is not atomic, so a racing
// writer shows up as PreconditionFailed and we adopt its object. The SHA-256 is recorded in the
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
  if (existing) return existing;

  const size = 'file' in body ? fs.statSync(body.file).size : body.bytes.length;
  const sha256 = 'file' in body ? await sha256OfFile(body.file) : sha256Hex(body.bytes);
  const metadata = { ...opts.metadata, sha256 };
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
      if (raced) return raced;
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
