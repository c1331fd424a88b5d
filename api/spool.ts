// The durable spool: GitHub does not redeliver a webhook by itself, so a verified push that
// Temporal cannot take right now is written here before it is answered, and started later by the
// drainer (spool-drainer.ts). Each entry is one file holding only the delivery's facts
// (repository, branch, commit, its metadata, delivery ID): no commands, no repository settings,
// no secrets, no raw payload. What to run is decided again from the config current when the
// entry drains, so a config change (new steps, a branch no longer monitored, a repository
// removed) applies to pushes still waiting, and a spool file, which anyone able to write the
// directory could edit, can never choose a command.
//
// Entries of the first format (version 1) held the whole decided PipelineInput, commands
// included; they are still read, but only their facts are taken.
//
// A file only appears under its final name once its bytes are on disk: write a temp file, fsync
// it, rename, fsync the directory. Names sort oldest first.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipelineId } from '../common/ids';
import type { CommitInfo } from '../common/types';
import { SHA, type PushFacts } from './github-push';

export interface SpoolEntry {
  version: 2;
  deliveryId: string;
  receivedAt: string;
  push: PushFacts;
}

/** An entry as read back: `legacy` when it came from a version-1 file (only its facts kept). */
export type ReadEntry = SpoolEntry & { legacy?: true };

export interface Spool {
  readonly dir: string;
  /** Entries on disk (and being written), as far as this process knows. */
  depth(): number;
  /** Resolves once the entry is durable. A push (repository, branch, commit) already spooled is
   * not written again: the caller gets the existing file's name. */
  put(entry: Omit<SpoolEntry, 'version'>): Promise<string>;
  /** Names of the entries, oldest first. */
  list(): Promise<string[]>;
  read(name: string): Promise<ReadEntry>;
  remove(name: string): Promise<void>;
  /** Moves an unreadable entry to `corrupt/` so it stops blocking the queue; kept for a person. */
  quarantine(name: string): Promise<void>;
}

const ENTRY = /^\d{15}-\d{6}-[0-9a-f]{16}\.json$/;
const MAX_TEXT = 4000;

export class SpoolEntryError extends Error {}

/** The dedup key of a push: GitHub names are case-insensitive, branches and SHAs are not. */
export function spoolKey(push: Pick<PushFacts, 'repository' | 'branch' | 'sha'>): string {
  return crypto
    .createHash('sha256')
    .update(`${push.repository.toLowerCase()}\n${push.branch}\n${push.sha}`)
    .digest('hex')
    .slice(0, 16);
}

export function openSpool(dir: string, onDepth: (depth: number) => void = () => undefined): Spool {
  const files = new Map<string, string>(); // name → push key
  const writing = new Map<string, Promise<string>>(); // push key → name once durable
  let seq = 0;

  // Start-up scan: temp files are writes that never reached their rename, so never answered.
  if (fs.existsSync(dir)) {
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('.tmp-')) fs.rmSync(path.join(dir, name), { force: true });
      else if (ENTRY.test(name)) files.set(name, keyOfName(name));
    }
  }
  const report = () => onDepth(files.size + writing.size);
  report();

  async function write(entry: SpoolEntry, key: string): Promise<string> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    seq = (seq + 1) % 1_000_000;
    const name = `${String(Date.now()).padStart(15, '0')}-${String(seq).padStart(6, '0')}-${key}.json`;
    const tmp = path.join(dir, `.tmp-${name}`);
    const fh = await fsp.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(entry) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path.join(dir, name));
    await syncDir(dir);
    return name;
  }

  return {
    dir,
    depth: () => files.size + writing.size,
    put(e) {
      const key = spoolKey(e.push);
      const pending = writing.get(key);
      if (pending) return pending;
      for (const [name, k] of files) if (k === key) return Promise.resolve(name);
      const entry: SpoolEntry = { version: 2, deliveryId: e.deliveryId, receivedAt: e.receivedAt, push: e.push };
      const done = write(entry, key)
        .then((name) => {
          files.set(name, key);
          return name;
        })
        .finally(() => {
          writing.delete(key);
          report();
        });
      writing.set(key, done);
      report();
      return done;
    },
    async list() {
      let names: string[];
      try {
        names = (await fsp.readdir(dir)).filter((n) => ENTRY.test(n)).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') names = [];
        else throw err;
      }
      // Another process (an earlier instance, an operator) may have added or removed entries.
      const seen = new Set(names);
      for (const n of [...files.keys()]) if (!seen.has(n)) files.delete(n);
      for (const n of names) if (!files.has(n)) files.set(n, keyOfName(n));
      report();
      return names;
    },
    async read(name) {
      const text = await fsp.readFile(path.join(dir, name), 'utf8');
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        throw new SpoolEntryError(`${name}: not JSON`);
      }
      const entry = parseEntry(raw);
      if (typeof entry === 'string') throw new SpoolEntryError(`${name}: ${entry}`);
      const key = entry.legacy ? legacyKey(entry.push) : spoolKey(entry.push);
      if (key !== keyOfName(name)) {
        throw new SpoolEntryError(`${name}: its push does not match its file name`);
      }
      return entry;
    },
    async remove(name) {
      // No directory fsync: an unlink lost in a crash only means one more start attempt, which
      // the workflow ID turns into "already started".
      await fsp.rm(path.join(dir, name), { force: true });
      files.delete(name);
      report();
    },
    async quarantine(name) {
      const to = path.join(dir, 'corrupt');
      await fsp.mkdir(to, { recursive: true, mode: 0o700 });
      await fsp.rename(path.join(dir, name), path.join(to, name));
      files.delete(name);
      report();
    },
  };
}

const isStr = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length <= max;

/** Facts taken field by field with their types checked; anything else in the file is ignored. */
function factsOf(o: {
  repository: unknown;
  branch: unknown;
  sha: unknown;
  commit: unknown;
  deliveryId: unknown;
}): PushFacts | string {
  if (!isStr(o.repository, 200) || !/^[^/\s]+\/[^/\s]+$/.test(o.repository)) return 'no repository full name';
  if (!isStr(o.branch, 255) || o.branch === '') return 'no branch';
  if (!isStr(o.sha) || !SHA.test(o.sha)) return 'no commit SHA';
  const c = (o.commit ?? {}) as Record<string, unknown>;
  const commit: CommitInfo = {
    message: isStr(c.message) ? c.message : '',
    author: isStr(c.author, 200) ? c.author : '',
    compareUrl: isStr(c.compareUrl, 2000) ? c.compareUrl : '',
  };
  if (isStr(c.timestamp, 100)) commit.timestamp = c.timestamp;
  return {
    repository: o.repository,
    branch: o.branch,
    sha: o.sha,
    commit,
    ...(isStr(o.deliveryId, 128) ? { deliveryId: o.deliveryId } : {}),
  };
}

/** A version-2 entry, or the facts of a version-1 one; a string says why the file is refused. */
function parseEntry(raw: unknown): ReadEntry | string {
  if (!raw || typeof raw !== 'object') return 'not a spool entry';
  const e = raw as Record<string, unknown>;
  const deliveryId = isStr(e.deliveryId, 128) ? e.deliveryId : '';
  const receivedAt = isStr(e.receivedAt, 100) ? e.receivedAt : new Date(0).toISOString();
  if (e.version === 2) {
    const p = (e.push ?? {}) as Record<string, unknown>;
    const push = factsOf({
      repository: p.repository,
      branch: p.branch,
      sha: p.sha,
      commit: p.commit,
      deliveryId: p.deliveryId,
    });
    return typeof push === 'string' ? push : { version: 2, deliveryId, receivedAt, push };
  }
  if (e.version === 1) {
    // { workflowId, deliveryId, receivedAt, input: PipelineInput }: the commands, clone URL and
    // settings in `input.repository` are NOT used; the current config decides them.
    const input = (e.input ?? {}) as Record<string, unknown>;
    const repository = (input.repository ?? {}) as Record<string, unknown>;
    const push = factsOf({
      repository: repository.name,
      branch: input.branch,
      sha: input.sha,
      commit: input.commit,
      deliveryId: input.deliveryId ?? e.deliveryId,
    });
    return typeof push === 'string' ? push : { version: 2, deliveryId, receivedAt, push, legacy: true };
  }
  return 'not a spool entry of a known version';
}

/** Version-1 files were named by a hash of the pipeline's workflow ID. */
function legacyKey(push: PushFacts): string {
  const workflowId = pipelineId(push.repository, push.branch, push.sha);
  return crypto.createHash('sha256').update(workflowId).digest('hex').slice(0, 16);
}

function keyOfName(name: string): string {
  return name.slice(-'0123456789abcdef.json'.length, -'.json'.length);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
