// What the APT index needs from a .deb (its control stanza, its file list for Contents, its size
// and MD5/SHA-1/SHA-256/SHA-512), read once where the .deb is built and stored beside the
// artifact as `<artifact key>.apt-index.json`. The ArtifactRef names that object and its SHA-256
// (`aptIndex`). A publish (staging, then production: the same bytes twice) then needs no download
// of the artifact: the pool file is a server-side copy, verified by S3's own SHA-256 against the
// facts' SHA-256, which must be the reference's. Before, every publish downloaded each .deb and
// read it again (issue 14 §6: 500 MB moved out of the endpoint and hashed four ways per publish).
//
// Trust: the facts are exactly as trusted as the reference's SHA-256, which the publish already
// takes as a build's identity: both are made by the builder's own code, outside the sandbox, from
// the file it stores (only the writer of the artifact writes its facts, store-object.ts). The
// facts object is held to the SHA-256 the reference records (the workflow history), so a later
// change to it is noticed. Everything that reaches an index is checked again at each publish, as
// for a downloaded .deb: the stanza by controlStanza against the reference, each path of the file
// list by the listing's own rule. When the facts object is missing or does not match, the publish
// downloads and reads the artifact as before and says so; so do references without facts (runs
// recorded before, and artifacts adopted from an earlier attempt that never wrote facts).
import fs from 'node:fs';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArtifactRef } from '../../common/types';
import { runProcess } from '../exec/process';
import { readDebs, type DebParts } from './deb-archive';
import { controlStanza, readDebControl } from './deb-control';
import { RepositoryFailure, nonRetryable } from './failures';
import { getBytes, hashFile, sha256Hex, type FileHashes } from './s3-objects';

export interface DebIndexFacts {
  /** The checked control stanza (controlStanza's output). */
  control: string;
  /** The files it installs, as Contents lists them (`usr/bin/x`). */
  files: string[];
  hashes: FileHashes;
}

const FORMAT = 'conveyor-apt-index/1';
const HEX = { md5: 32, sha1: 40, sha256: 64, sha512: 128 } as const;

/** Where a .deb's facts are stored: beside it (package file names end in .deb or .rpm). */
export function aptIndexKey(artifactKey: string): string {
  return `${artifactKey}.apt-index.json`;
}

/** The files of a `dpkg-deb --contents` listing, as `usr/bin/x` (Contents' form): everything but
 * directories; symlinks and hard links by their own name. deb-archive.ts gives the same list. */
export function filesOfListing(text: string): string[] {
  const files: string[] = [];
  // `-rw-r--r-- root/root       6 2026-01-01 00:00 ./usr/share/x/VERSION` (symlinks: `… a -> b`).
  for (const line of text.split('\n')) {
    const m = /^([-dlhcbp])\S*\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*)$/.exec(line);
    if (!m || m[1] === 'd') continue;
    let name = m[2];
    if (m[1] === 'l') name = name.replace(/ -> .*$/, '');
    if (m[1] === 'h') name = name.replace(/ link to .*$/, '');
    name = name.replace(/^\.?\//, '');
    if (listable(name)) files.push(name);
  }
  return files;
}

/** A path Contents can hold on one line: what filesOfListing and deb-archive.ts ever list. */
function listable(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= 4096 && !/[\n\r\0]/.test(name);
}

/** The regular files and symlinks a .deb installs, read with dpkg-deb. */
async function debFiles(file: string, ref: ArtifactRef, signal?: AbortSignal): Promise<string[]> {
  const log = `${file}.contents`;
  const out = await runProcess('dpkg-deb', ['--contents', file], { signal, logFile: log });
  signal?.throwIfAborted();
  try {
    const text = await fs.promises.readFile(log, 'utf8');
    if (out.exitCode !== 0) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${ref.file} (${ref.key}): cannot list its files: ${text.slice(-300)}`,
      );
    }
    return filesOfListing(text);
  } finally {
    await fs.promises.rm(log, { force: true });
  }
}

/** The facts of one local .deb: from deb-archive.ts's reading when it had one (`read`), else with
 * dpkg-deb, whose verdicts and messages are the reference. The stanza is checked against `ref`. */
export async function debFactsOf(
  file: string,
  ref: ArtifactRef,
  read: DebParts | undefined,
  hashes: FileHashes | undefined,
  signal?: AbortSignal,
): Promise<DebIndexFacts> {
  const control = read ? controlStanza(read.control, ref) : await readDebControl(file, ref, signal);
  const files = read ? read.files : await debFiles(file, ref, signal);
  return { control, files, hashes: hashes ?? read?.hashes ?? (await hashFile(file)) };
}

/** The facts of one .deb as the builder stores them (one file: deb-archive.ts, else dpkg-deb). */
export async function readDebIndexFacts(file: string, ref: ArtifactRef, signal?: AbortSignal): Promise<Buffer> {
  const [read] = await readDebs([file], signal);
  const facts = await debFactsOf(file, ref, read, undefined, signal);
  const { md5, sha1, sha256, sha512, size } = facts.hashes;
  return Buffer.from(
    JSON.stringify({ format: FORMAT, size, md5, sha1, sha256, sha512, control: facts.control, files: facts.files }),
  );
}

/** A stored facts object of `format` (deb or rpm facts), parsed; the reason when it is not one. */
export function factsObject(bytes: Buffer, format: string): Record<string, unknown> | string {
  let o: unknown;
  try {
    o = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'it is not JSON';
  }
  if (typeof o !== 'object' || o === null || (o as { format?: unknown }).format !== format)
    return `it is not ${format}`;
  return o as Record<string, unknown>;
}

/** Parses stored facts and holds them to `ref`; the reason they cannot be used, as a string. */
export function parseDebIndexFacts(bytes: Buffer, ref: ArtifactRef): DebIndexFacts | string {
  const o = factsObject(bytes, FORMAT);
  if (typeof o === 'string') return o;
  for (const [name, length] of Object.entries(HEX)) {
    const v = o[name];
    if (typeof v !== 'string' || v.length !== length || !/^[0-9a-f]+$/.test(v)) return `its ${name} is not a hash`;
  }
  if (o.sha256 !== ref.sha256.toLowerCase() || o.size !== ref.size) {
    return `it describes ${String(o.sha256)} (${String(o.size)} bytes), not the reference's ${ref.sha256} (${ref.size} bytes)`;
  }
  if (typeof o.control !== 'string') return 'it has no control stanza';
  if (!Array.isArray(o.files) || !o.files.every(listable)) return 'its file list holds a path Contents cannot list';
  return {
    control: o.control,
    files: o.files,
    hashes: {
      size: ref.size,
      md5: o.md5 as string,
      sha1: o.sha1 as string,
      sha256: o.sha256,
      sha512: o.sha512 as string,
    },
  };
}

/** Facts an artifact reference points at (`aptIndex`, `yumIndex`), read, held to the pointer's
 * SHA-256 and parsed; the reason when they cannot be used (the publish then reads the artifact). */
export async function readPointedFacts<T>(
  s3: S3Client,
  bucket: string,
  pointer: { key: string; sha256: string } | undefined,
  parse: (bytes: Buffer) => T | string,
  signal?: AbortSignal,
): Promise<T | string> {
  if (!pointer) return 'the reference names none';
  const bytes = await getBytes(s3, bucket, pointer.key, signal);
  if (!bytes) return `s3://${bucket}/${pointer.key} does not exist`;
  if (sha256Hex(bytes) !== pointer.sha256) {
    return `s3://${bucket}/${pointer.key} has SHA-256 ${sha256Hex(bytes)}, the reference promises ${pointer.sha256}`;
  }
  const facts = parse(bytes);
  return typeof facts === 'string' ? `s3://${bucket}/${pointer.key}: ${facts}` : facts;
}

/** A reference's facts, read and checked; the reason when they cannot be used (the publish then
 * reads the artifact itself). The stanza is checked against the reference here too. */
export async function fetchDebIndexFacts(
  s3: S3Client,
  bucket: string,
  ref: ArtifactRef,
  signal?: AbortSignal,
): Promise<DebIndexFacts | string> {
  const facts = await readPointedFacts(s3, bucket, ref.aptIndex, (bytes) => parseDebIndexFacts(bytes, ref), signal);
  return typeof facts === 'string' ? facts : { ...facts, control: controlStanza(facts.control, ref) };
}
