// Reading and writing the sharded repository state (the design is in repository-state.ts): a head
// at `stateKey`, directories and per-name shards under `<state>.shards/`, content-named by the
// SHA-256 of their canonical JSON. Canonical (keys sorted, no spaces), so the same content always
// gets the same name whichever worker or code path built the objects: an unchanged name is never
// written again, and a retry after a crash writes the very names the first attempt wrote.
// The worker-local cache (`cacheDir`) holds objects by SHA-256 and is checked on every read: a
// damaged or foreign file there is read from the bucket again, never trusted.
import fs from 'node:fs';
import path from 'node:path';
import type { RepoStore } from './repo-store';
import {
  generationsPrefix,
  parseState,
  type NameShard,
  type PublishedPackage,
  type RepositoryState,
  type StateDirectory,
  type StateHead,
  type StoredLayout,
} from './repository-state';
import { mapLimit, md5Hex, sha256Hex } from './s3-objects';

const PARALLEL = 16;

const byCode = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** A shallow copy of `o` without `keys`. */
export function without<T extends object, K extends keyof T>(o: T, ...keys: K[]): Omit<T, K> {
  const copy = { ...o };
  for (const k of keys) delete copy[k];
  return copy;
}

/** `conveyor-state/apt/bookworm-unstable.shards/` for `conveyor-state/apt/bookworm-unstable.json`. */
export function shardsPrefix(stateKey: string): string {
  return `${stateKey.replace(/\.json$/, '')}.shards/`;
}

const dirKey = (stateKey: string, sha: string) => `${shardsPrefix(stateKey)}d/${sha}.json`;
const nameKey = (stateKey: string, sha: string) => `${shardsPrefix(stateKey)}n/${sha}.json`;

/** The directory bucket of a package name: 256 of them, so a directory stays small at any size. */
export const bucketOf = (name: string): string => sha256Hex(name).slice(0, 2);

/** JSON with object keys sorted and undefined members left out: one text per value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const members = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort(byCode)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Keys of a layout's objects: what a generation references besides its files. */
export function storedKeys(stateKey: string, layout: StoredLayout | undefined): string[] {
  if (!layout) return [];
  return [
    ...Object.values(layout.dirs).map((sha) => dirKey(stateKey, sha)),
    ...Object.values(layout.names).map((sha) => nameKey(stateKey, sha)),
  ];
}

/** Objects read from the bucket (not the cache) and their bytes: what the benchmark and tests
 * report; the publisher only logs them. */
export interface ReadStats {
  objects: number;
  bytes: number;
}

interface ReadContext {
  store: RepoStore;
  stateKey: string;
  cacheDir?: string;
  signal?: AbortSignal;
  stats?: ReadStats;
}

async function fromCache(cacheDir: string | undefined, sha: string): Promise<Buffer | undefined> {
  if (!cacheDir) return undefined;
  const bytes = await fs.promises.readFile(path.join(cacheDir, sha.slice(0, 2), sha)).catch(() => undefined);
  return bytes && sha256Hex(bytes) === sha ? bytes : undefined;
}

async function toCache(cacheDir: string | undefined, sha: string, bytes: Buffer): Promise<void> {
  if (!cacheDir) return;
  const dir = path.join(cacheDir, sha.slice(0, 2));
  await fs.promises.mkdir(dir, { recursive: true });
  // Rename into place: a concurrent reader sees the whole file or none.
  const tmp = path.join(dir, `.${sha}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  await fs.promises.writeFile(tmp, bytes);
  await fs.promises.rename(tmp, path.join(dir, sha));
}

async function readContent<T>(ctx: ReadContext, key: string, sha: string): Promise<T> {
  let bytes = await fromCache(ctx.cacheDir, sha);
  if (!bytes) {
    bytes = await ctx.store.get(key, ctx.signal);
    if (!bytes) {
      throw new Error(
        `${ctx.store.url(key)} is missing, but the repository state ${ctx.store.url(ctx.stateKey)} names it: ` +
          'restore it (from S3 versioning or a backup); the state cannot be read without it',
      );
    }
    if (ctx.stats) {
      ctx.stats.objects++;
      ctx.stats.bytes += bytes.length;
    }
    if (sha256Hex(bytes) !== sha) {
      throw new Error(`${ctx.store.url(key)} does not hold the content its name says (SHA-256 ${sha}): damaged`);
    }
    await toCache(ctx.cacheDir, sha, bytes);
  }
  return JSON.parse(bytes.toString('utf8')) as T;
}

/** The names of a layout's directories, read (from the cache where it has them). */
async function readDirectories(ctx: ReadContext, dirs: Record<string, string>): Promise<Record<string, string>> {
  const read = await mapLimit(Object.values(dirs), PARALLEL, (sha) =>
    readContent<StateDirectory>(ctx, dirKey(ctx.stateKey, sha), sha),
  );
  return Object.assign({}, ...read.map((d) => d.names)) as Record<string, string>;
}

/** Packages (in name order, each shard's own order within) and owners of the named shards. */
export async function readShards(
  ctx: ReadContext,
  names: Record<string, string>,
): Promise<{ packages: PublishedPackage[]; owners: Record<string, string> }> {
  const sorted = Object.keys(names).sort(byCode);
  const shards = await mapLimit(sorted, PARALLEL, (name) =>
    readContent<NameShard>(ctx, nameKey(ctx.stateKey, names[name]), names[name]),
  );
  const owners: Record<string, string> = {};
  for (const s of shards) if (s.owner !== undefined) owners[s.name] = s.owner;
  return { packages: shards.flatMap((s) => s.packages), owners };
}

export const isHead = (s: StateHead | RepositoryState): s is StateHead => s.schema === 2 && 'dirs' in s;

/** Parses what is stored at `stateKey`: a schema 2 head or a schema 1 whole state. */
export function parseStored(bytes: Buffer, where: string, format: 'apt' | 'yum'): StateHead | RepositoryState {
  const raw = JSON.parse(bytes.toString('utf8')) as { schema?: unknown; format?: unknown };
  if (raw.schema === 1) return parseState(bytes, where, format);
  if (raw.schema !== 2 || raw.format !== format) {
    throw new Error(`${where} is not a ${format} repository state (schema 1 or 2)`);
  }
  return raw as StateHead;
}

export interface LoadOptions {
  signal?: AbortSignal;
  cacheDir?: string;
  stats?: ReadStats;
}

/** The whole state of the live generation, or undefined when there is none. */
export async function loadState(
  store: RepoStore,
  fmt: { stateKey: string; format: 'apt' | 'yum' },
  opts: LoadOptions = {},
): Promise<RepositoryState | undefined> {
  const bytes = await store.get(fmt.stateKey, opts.signal);
  if (!bytes) return undefined;
  if (opts.stats) {
    opts.stats.objects++;
    opts.stats.bytes += bytes.length;
  }
  const stored = parseStored(bytes, store.url(fmt.stateKey), fmt.format);
  if (!isHead(stored)) return stored;
  const ctx: ReadContext = { store, stateKey: fmt.stateKey, ...opts };
  const names = await readDirectories(ctx, stored.dirs);
  const { packages, owners } = await readShards(ctx, names);
  return { ...without(stored, 'dirs', 'count'), schema: 2, packages, owners, layout: { dirs: stored.dirs, names } };
}

/** A generation's packages and owners from its directories (a snapshot's `dirs`). */
export async function loadLayout(
  store: RepoStore,
  stateKey: string,
  dirs: Record<string, string>,
  opts: LoadOptions = {},
): Promise<{ packages: PublishedPackage[]; owners: Record<string, string> }> {
  const ctx: ReadContext = { store, stateKey, ...opts };
  return readShards(ctx, await readDirectories(ctx, dirs));
}

/** The published versions of one name: the head, one directory, one shard. */
export async function packagesNamed(
  store: RepoStore,
  fmt: { stateKey: string; format: 'apt' | 'yum' },
  name: string,
  opts: LoadOptions = {},
): Promise<PublishedPackage[]> {
  const bytes = await store.get(fmt.stateKey, opts.signal);
  if (!bytes) return [];
  const stored = parseStored(bytes, store.url(fmt.stateKey), fmt.format);
  if (!isHead(stored)) return stored.packages.filter((p) => p.name === name);
  const dir = stored.dirs[bucketOf(name)];
  if (!dir) return [];
  const ctx: ReadContext = { store, stateKey: fmt.stateKey, ...opts };
  const names = await readDirectories(ctx, { [bucketOf(name)]: dir });
  if (!names[name]) return [];
  return (await readShards(ctx, { [name]: names[name] })).packages;
}

interface NewObject {
  key: string;
  sha: string;
  body: Buffer;
}

/** Where a generation's packages go: its layout, every key it references, and the objects the
 * previous layout lacks (the only ones to write). */
export interface PlannedLayout {
  layout: StoredLayout;
  keys: string[];
  writes: NewObject[];
}

export function planLayout(
  stateKey: string,
  packages: PublishedPackage[],
  owners: Record<string, string>,
  previous: StoredLayout | undefined,
): PlannedLayout {
  const byName = new Map<string, PublishedPackage[]>();
  for (const p of packages) {
    const list = byName.get(p.name) ?? [];
    list.push(p);
    byName.set(p.name, list);
  }
  for (const name of Object.keys(owners)) if (!byName.has(name)) byName.set(name, []);
  const writes: NewObject[] = [];
  const names: Record<string, string> = {};
  const buckets = new Map<string, Record<string, string>>();
  for (const name of [...byName.keys()].sort(byCode)) {
    const shard: NameShard = { name, owner: owners[name], packages: byName.get(name)! };
    const body = Buffer.from(canonicalJson(shard));
    const sha = sha256Hex(body);
    names[name] = sha;
    if (previous?.names[name] !== sha) writes.push({ key: nameKey(stateKey, sha), sha, body });
    const b = bucketOf(name);
    const bucket = buckets.get(b) ?? {};
    bucket[name] = sha;
    buckets.set(b, bucket);
  }
  const dirs: Record<string, string> = {};
  for (const b of [...buckets.keys()].sort(byCode)) {
    const body = Buffer.from(canonicalJson({ names: buckets.get(b)! } satisfies StateDirectory));
    const sha = sha256Hex(body);
    dirs[b] = sha;
    if (previous?.dirs[b] !== sha) writes.push({ key: dirKey(stateKey, sha), sha, body });
  }
  const layout = { dirs, names };
  return { layout, keys: storedKeys(stateKey, layout), writes };
}

/** Writes a planned layout's new objects, write-once (a retry adopts what it wrote before), and
 * keeps them in the cache. Before the head that names them. */
export async function writeLayout(
  store: RepoStore,
  planned: PlannedLayout,
  opts: { cacheDir?: string; signal?: AbortSignal; uploaded?: string[] },
): Promise<void> {
  await mapLimit(planned.writes, PARALLEL, async (o) => {
    await store.putOnce(
      o.key,
      o.body,
      { contentType: 'application/json', immutable: true, md5: md5Hex(o.body) },
      opts.signal,
    );
    await toCache(opts.cacheDir, o.sha, o.body);
    opts.uploaded?.push(o.key);
  });
}

/** The head to store for a state and its layout. */
export function headOf(state: RepositoryState, layout: StoredLayout): StateHead {
  const rest = without(state, 'packages', 'owners', 'layout', 'schema');
  return { ...rest, schema: 2, dirs: layout.dirs, count: state.packages.length };
}

/** The generations with a snapshot, oldest first. */
export async function listGenerationNumbers(
  store: RepoStore,
  stateKey: string,
  signal?: AbortSignal,
): Promise<number[]> {
  const listed = await store.list(generationsPrefix(stateKey), signal);
  return [...listed.keys()]
    .map((k) => /\/(\d{8,})\.json$/.exec(k)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}
