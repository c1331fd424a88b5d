// The durable spool: GitHub does not redeliver a webhook by itself, so a verified push that
// Temporal cannot take right now is written here before it is answered, and started later by the
// drainer (spool-drainer.ts). Each entry is one file holding the decided PipelineInput (no
// secrets, no raw payload). A file only appears under its final name once its bytes are on disk:
// write a temp file, fsync it, rename, fsync the directory. Names sort oldest first.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipelineId } from '../common/ids';
import type { PipelineInput } from '../common/types';

export interface SpoolEntry {
  version: 1;
  /** The pipeline's workflow ID: the dedup key, whatever happens to the file. */
  workflowId: string;
  deliveryId: string;
  receivedAt: string;
  input: PipelineInput;
}

export interface Spool {
  readonly dir: string;
  /** Entries on disk (and being written), as far as this process knows. */
  depth(): number;
  /** Resolves once the entry is durable. A push whose workflow ID is already spooled is not
   * written again: the caller gets the existing file's name. */
  put(entry: Omit<SpoolEntry, 'version'>): Promise<string>;
  /** Names of the entries, oldest first. */
  list(): Promise<string[]>;
  read(name: string): Promise<SpoolEntry>;
  remove(name: string): Promise<void>;
  /** Moves an unreadable entry to `corrupt/` so it stops blocking the queue; kept for a person. */
  quarantine(name: string): Promise<void>;
}

const ENTRY = /^\d{15}-\d{6}-[0-9a-f]{16}\.json$/;

export class SpoolEntryError extends Error {}

export function openSpool(dir: string, onDepth: (depth: number) => void = () => undefined): Spool {
  const files = new Map<string, string>(); // name → workflow ID hash
  const writing = new Map<string, Promise<string>>(); // workflow ID hash → name once durable
  let seq = 0;

  // Start-up scan: temp files are writes that never reached their rename, so never answered.
  if (fs.existsSync(dir)) {
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('.tmp-')) fs.rmSync(path.join(dir, name), { force: true });
      else if (ENTRY.test(name)) files.set(name, hashOf(name));
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
      const key = keyOf(e.workflowId);
      const pending = writing.get(key);
      if (pending) return pending;
      for (const [name, k] of files) if (k === key) return Promise.resolve(name);
      const done = write({ version: 1, ...e }, key)
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
      for (const n of names) if (!files.has(n)) files.set(n, hashOf(n));
      report();
      return names;
    },
    async read(name) {
      const text = await fsp.readFile(path.join(dir, name), 'utf8');
      let entry: SpoolEntry;
      try {
        entry = JSON.parse(text) as SpoolEntry;
      } catch {
        throw new SpoolEntryError(`${name}: not JSON`);
      }
      const input = entry?.input;
      if (
        entry?.version !== 1 ||
        typeof input?.repository?.name !== 'string' ||
        typeof input.branch !== 'string' ||
        typeof input.sha !== 'string' ||
        entry.workflowId !== pipelineId(input.repository.name, input.branch, input.sha)
      ) {
        throw new SpoolEntryError(`${name}: not a spool entry of this version`);
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

function keyOf(workflowId: string): string {
  return crypto.createHash('sha256').update(workflowId).digest('hex').slice(0, 16);
}

function hashOf(name: string): string {
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
