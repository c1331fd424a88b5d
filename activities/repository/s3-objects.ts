// The S3 operations publishing needs, each taking the cancellation signal. Listing always follows
// continuation tokens: S3 (and moto) answer at most 1,000 keys a page, and a listing that stopped at
// the first page would make garbage collection miss objects or, worse, treat live files as absent.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface ListedObject {
  key: string;
  size: number;
  /** The ETag without quotes: the MD5 of the bytes for a single-part PUT without SSE-KMS (public
   * repository buckets cannot use SSE-KMS: anonymous readers could not decrypt). */
  etag: string;
}

/** Whether a listed object is exactly these bytes (size, and MD5 when the ETag is one). */
export function sameObject(o: ListedObject | undefined, size: number, md5: string): boolean {
  if (!o || o.size !== size) return false;
  return !/^[0-9a-f]{32}$/.test(o.etag) || o.etag === md5;
}

/** Every key under `prefix`, all pages. */
export async function listAll(
  s3: S3Client,
  bucket: string,
  prefix: string,
  signal?: AbortSignal,
): Promise<Map<string, ListedObject>> {
  const found = new Map<string, ListedObject>();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }), {
      abortSignal: signal,
    });
    for (const o of page.Contents ?? []) {
      if (o.Key)
        found.set(o.Key, { key: o.Key, size: o.Size ?? 0, etag: (o.ETag ?? '').replace(/"/g, '').toLowerCase() });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return found;
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** The object's bytes, or undefined when there is no such key. */
export async function getBytes(
  s3: S3Client,
  bucket: string,
  key: string,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return Buffer.from(await out.Body!.transformToByteArray());
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** User metadata of an object (keys lower-case, without `x-amz-meta-`), or undefined when absent. */
export async function headMetadata(
  s3: S3Client,
  bucket: string,
  key: string,
  signal?: AbortSignal,
): Promise<Record<string, string> | undefined> {
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return out.Metadata ?? {};
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** Streams an object to `file` and returns the hashes (hashFile's, computed on the way) and size
 * of what was written; undefined when there is no such key. */
export async function downloadToFile(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  signal?: AbortSignal,
): Promise<FileHashes | undefined> {
  let body: Readable;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    body = out.Body as Readable;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const hash = hasher();
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(body, tap, fs.createWriteStream(file), { signal });
  return hash.digest();
}

export interface PutOptions {
  contentType: string;
  /** Index files change under a stable name and must not be cached; pool files and hashed
   * index files never change once written. */
  immutable: boolean;
  metadata?: Record<string, string>;
}

export async function putObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer | { file: string },
  opts: PutOptions,
  signal?: AbortSignal,
): Promise<void> {
  const fromFile = !Buffer.isBuffer(body);
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: fromFile ? fs.createReadStream(body.file) : body,
      ContentLength: fromFile ? fs.statSync(body.file).size : body.length,
      ContentType: opts.contentType,
      CacheControl: opts.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      Metadata: opts.metadata,
    }),
    { abortSignal: signal },
  );
}

/** Deletes keys, 1,000 per request (the DeleteObjects limit); reports per-key errors. */
export async function deleteKeys(s3: S3Client, bucket: string, keys: string[], signal?: AbortSignal): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
      { abortSignal: signal },
    );
    if (out.Errors?.length) {
      const first = out.Errors[0];
      throw new Error(
        `could not delete ${out.Errors.length} objects from ${bucket}, e.g. ${first.Key}: ${first.Message}`,
      );
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at once, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>) {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (err) {
        failed = true; // start nothing new: the caller is about to see the error
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function md5Hex(data: Buffer | string): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

/** MD5 (for ETags), SHA-1 (Debian's Packages still lists it), SHA-256, SHA-512 and size. */
export interface FileHashes {
  md5: string;
  sha1: string;
  sha256: string;
  sha512: string;
  size: number;
}

function hasher(): { update(chunk: Buffer): void; digest(): FileHashes } {
  const h = ['md5', 'sha1', 'sha256', 'sha512'].map((alg) => crypto.createHash(alg));
  let size = 0;
  return {
    update(chunk) {
      for (const x of h) x.update(chunk);
      size += chunk.length;
    },
    digest: () => {
      const [md5, sha1, sha256, sha512] = h.map((x) => x.digest('hex'));
      return { md5, sha1, sha256, sha512, size };
    },
  };
}

/** FileHashes of bytes in memory. */
export function hashBytes(bytes: Buffer): FileHashes {
  const h = hasher();
  h.update(bytes);
  return h.digest();
}

/** FileHashes of a file, one read. */
export async function hashFile(file: string): Promise<FileHashes> {
  // A small file (most packages of a repository) is read synchronously: open, stat, read and
  // close through libuv's thread pool cost more than reading it (2,000 rpms: ~200 ms against
  // ~30 ms). Up to 8 MB in one read, larger ones streamed.
  const size = fs.statSync(file).size;
  if (size <= SYNC_READ_BYTES) return hashBytes(fs.readFileSync(file));
  if (size <= SMALL_FILE_BYTES) return hashBytes(await fs.promises.readFile(file));
  const h = hasher();
  for await (const chunk of fs.createReadStream(file) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest();
}

const SYNC_READ_BYTES = 1024 * 1024;
const SMALL_FILE_BYTES = 8 * 1024 * 1024;

/** The HTTP status of an S3 client error (412 for a refused conditional write), if it has one. */
export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** CopyObject's limit: larger objects need UploadPartCopy. */
export const MAX_COPY_BYTES = 5 * 1024 ** 3;

/**
 * A server-side copy of `from` to `to` whose bytes S3 hashes as it copies (ChecksumAlgorithm
 * SHA256), written once like `putOnce` (`IfNoneMatch: '*'`): 'copied' when the copy is exactly
 * `sha256`; 'exists' when something is already at `to` (412: nothing was written, the caller's
 * write-once path decides whether those bytes are the same); 'unverified' when S3 gave no
 * full-object SHA-256 for it (the copy is deleted, the caller uploads the bytes it checked itself);
 * a copy of other bytes (the source changed since it was read) is deleted and 'mismatch' returned.
 */
export async function copyChecked(
  s3: S3Client,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
  opts: PutOptions & { sha256: string },
  signal?: AbortSignal,
): Promise<{ outcome: 'copied' | 'exists' | 'unverified' | 'mismatch'; sha256?: string }> {
  let out;
  try {
    out = await s3.send(
      new CopyObjectCommand({
        Bucket: to.bucket,
        Key: to.key,
        CopySource: `${from.bucket}/${from.key.split('/').map(encodeURIComponent).join('/')}`,
        MetadataDirective: 'REPLACE',
        ContentType: opts.contentType,
        CacheControl: opts.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        Metadata: opts.metadata,
        ChecksumAlgorithm: 'SHA256',
        IfNoneMatch: '*',
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    if (httpStatus(err) === 412) {
      return { outcome: 'exists' };
    }
    throw err;
  }
  const got = out.CopyObjectResult?.ChecksumSHA256;
  const hex = got && /^[A-Za-z0-9+/]{43}=$/.test(got) ? Buffer.from(got, 'base64').toString('hex') : undefined;
  if (hex === opts.sha256.toLowerCase()) return { outcome: 'copied', sha256: hex };
  await s3.send(new DeleteObjectCommand({ Bucket: to.bucket, Key: to.key }), { abortSignal: signal });
  return { outcome: hex ? 'mismatch' : 'unverified', sha256: hex };
}
