// An environment's repository storage: one bucket and an optional key prefix (`s3://bucket/prefix`
// in conveyor.yml). Every key the publisher handles is relative to the prefix, so the formats and
// the state never see it; only this adapter adds it on the way out and strips it from listings.
// Hosts read `<publicUrl>/<key>`, and publicUrl already ends in the prefix: a publisher writing
// to the bucket root while hosts read under the prefix 404s on every URL (issue 13).
//
// Two kinds of write:
// - `put`: mutable names (Release, Packages, repomd.xml, the state), `Cache-Control: no-cache`;
// - `putOnce`: write-once names (pool files, by-hash files, repodata/<sha>-…) with
//   `IfNoneMatch: '*'`, as the artifact store does (activities/packaging/store-object.ts). A
//   refused write (412) adopts the object already there when it is the same bytes (a crashed
//   earlier attempt, a racing writer); other bytes are an error, never silently overwritten.
//   `replaceOnce` is the one deliberate exception: a write-once object the listing showed damaged
//   (wrong size or MD5) is deleted first, then written once again.
// Files larger than `multipartThresholdBytes` go up as a multipart upload (a single PUT stops at
// 5 GB); the ETag of a multipart object is not an MD5, so such objects are compared by size only.
import fs from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  deleteKeys,
  downloadToFile,
  getBytes,
  headMetadata,
  httpStatus,
  listAll,
  md5Hex,
  type ListedObject,
  type PutOptions,
} from './s3-objects';

/** S3 refuses parts under 5 MiB (except the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024;

export interface RepoStore {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
  /** Files larger than this go up in parts (storage.multipartThresholdMB). */
  multipartThresholdBytes: number;
  /** `s3://bucket/prefix<key>`, for messages. */
  url(key: string): string;
  list(prefix: string, signal?: AbortSignal): Promise<Map<string, ListedObject>>;
  get(key: string, signal?: AbortSignal): Promise<Buffer | undefined>;
  head(key: string, signal?: AbortSignal): Promise<Record<string, string> | undefined>;
  download(key: string, file: string, signal?: AbortSignal): ReturnType<typeof downloadToFile>;
  put(key: string, body: Buffer | { file: string }, opts: PutOptions, signal?: AbortSignal): Promise<void>;
  /** Write-once; resolves `adopted` when the same bytes were already there. */
  putOnce(
    key: string,
    body: Buffer | { file: string },
    opts: PutOptions & { md5: string },
    signal?: AbortSignal,
  ): Promise<'written' | 'adopted'>;
  /** Deletes a damaged write-once object, then writes it once. */
  replaceOnce(
    key: string,
    body: Buffer | { file: string },
    opts: PutOptions & { md5: string },
    signal?: AbortSignal,
  ): Promise<'written' | 'adopted'>;
  delete(keys: string[], signal?: AbortSignal): Promise<void>;
}

export interface RepoStoreOptions {
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads (at least 5 MiB). */
  partBytes?: number;
}

export function createRepoStore(s3: S3Client, bucket: string, prefix = '', o: RepoStoreOptions = {}): RepoStore {
  if (prefix && !prefix.endsWith('/')) prefix = `${prefix}/`;
  const threshold = o.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD;
  const partBytes = Math.max(MIN_PART_BYTES, o.partBytes ?? Math.max(MIN_PART_BYTES, Math.min(threshold, 64 << 20)));
  const full = (key: string) => `${prefix}${key}`;

  const headers = (opts: PutOptions) => ({
    ContentType: opts.contentType,
    CacheControl: opts.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    Metadata: opts.metadata,
  });

  async function multipart(
    key: string,
    file: string,
    size: number,
    opts: PutOptions,
    once: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const created = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: full(key), ...headers(opts) }),
      { abortSignal: signal },
    );
    const UploadId = created.UploadId!;
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let offset = 0, n = 1; offset < size; offset += partBytes, n++) {
        const end = Math.min(size, offset + partBytes);
        const out = await s3.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: full(key),
            UploadId,
            PartNumber: n,
            Body: fs.createReadStream(file, { start: offset, end: end - 1 }),
            ContentLength: end - offset,
          }),
          { abortSignal: signal },
        );
        parts.push({ ETag: out.ETag!, PartNumber: n });
      }
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: full(key),
          UploadId,
          MultipartUpload: { Parts: parts },
          ...(once ? { IfNoneMatch: '*' } : {}),
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      // An abandoned upload keeps its parts (and costs) until aborted.
      await s3
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: full(key), UploadId }))
        .catch(() => undefined);
      throw err;
    }
  }

  async function write(
    key: string,
    body: Buffer | { file: string },
    opts: PutOptions,
    once: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const fromFile = !Buffer.isBuffer(body);
    const size = fromFile ? fs.statSync(body.file).size : body.length;
    if (fromFile && size > threshold) return multipart(key, body.file, size, opts, once, signal);
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: full(key),
        Body: fromFile ? fs.createReadStream(body.file) : body,
        ContentLength: size,
        ...headers(opts),
        ...(once ? { IfNoneMatch: '*' } : {}),
      }),
      { abortSignal: signal },
    );
  }

  async function sizeOf(body: Buffer | { file: string }) {
    return Buffer.isBuffer(body) ? body.length : (await fs.promises.stat(body.file)).size;
  }

  const store: RepoStore = {
    bucket,
    prefix,
    multipartThresholdBytes: threshold,
    url: (key) => `s3://${bucket}/${full(key)}`,
    async list(p, signal) {
      const found = await listAll(s3, bucket, full(p), signal);
      if (!prefix) return found;
      return new Map([...found].map(([k, v]) => [k.slice(prefix.length), { ...v, key: k.slice(prefix.length) }]));
    },
    get: (key, signal) => getBytes(s3, bucket, full(key), signal),
    head: (key, signal) => headMetadata(s3, bucket, full(key), signal),
    download: (key, file, signal) => downloadToFile(s3, bucket, full(key), file, signal),
    put: (key, body, opts, signal) => write(key, body, opts, false, signal),
    async putOnce(key, body, opts, signal) {
      try {
        await write(key, body, opts, true, signal);
        return 'written';
      } catch (err) {
        if (httpStatus(err) !== 412) throw err;
      }
      // Refused: something is there. The same bytes are adopted; anything else is not ours to replace.
      const size = await sizeOf(body);
      const there = await listAll(s3, bucket, full(key), signal);
      const o = there.get(full(key));
      const md5Etag = o && /^[0-9a-f]{32}$/.test(o.etag);
      if (o && o.size === size && (!md5Etag || o.etag === opts.md5)) return 'adopted';
      throw new Error(
        `${store.url(key)} is write-once and already holds other bytes (${o?.size ?? '?'} bytes, ETag ${o?.etag ?? '?'}); ` +
          'the publish will be retried and repairs it when the listing shows it damaged',
      );
    },
    async replaceOnce(key, body, opts, signal) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: full(key) }), { abortSignal: signal });
      return store.putOnce(key, body, opts, signal);
    },
    delete: (keys, signal) => deleteKeys(s3, bucket, keys.map(full), signal),
  };
  return store;
}

export { md5Hex };
