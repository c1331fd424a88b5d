// Reading many .debs at once without a dpkg-deb per package (issue 14, part 4: two dpkg-deb
// processes per package, each with its tar and decompressor, were the whole cost of the APT ingest;
// apt-ftparchive reads the archives in-process). A .deb is an ar archive of `debian-binary`,
// `control.tar[.gz|.xz]` and `data.tar[.gz|.xz]` (deb(5)); what the publisher needs is the raw
// control file (checked by deb-control.ts exactly as before) and the names in the data member
// (Contents). Plain and gzip members are read in Node; xz members (dpkg-deb's default, so every
// package our packaging step builds) go through ONE `xz -dc` for the whole batch: the members are
// written to its stdin one after another and its output is cut at the uncompressed sizes that each
// member's own xz index declares. xz checks every stream against its index, so a member that lies
// about its size makes xz fail, and the batch is read the old way.
//
// The fast path is a filter, not a second parser to trust: anything it does not fully understand
// (another compression such as zstd, an extra ar member, a tar entry type or name encoding whose
// `dpkg-deb --contents` listing it cannot reproduce byte for byte, a truncated member, a control
// member over 1 MiB) answers `undefined` for that package, and the caller runs dpkg-deb as before,
// whose verdicts and error messages stay the reference. Sizes are bounded before anything is
// decompressed into memory; data members are streamed, only their headers are kept.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { hashBytes, mapLimit, type FileHashes } from './s3-objects';

export interface DebParts {
  /** The control file as written (UTF-8 decoded, as reading the extracted file gave). */
  control: string;
  /** The regular files, symlinks, hard links and devices of the data member (Contents' form). */
  files: string[];
  /** The file's hashes, when it was read whole anyway. */
  hashes?: FileHashes;
}

/** Raised inside the fast path for whatever it leaves to dpkg-deb. */
class Unsupported extends Error {}

const MAX_CONTROL_COMPRESSED = 1 << 20;
const MAX_CONTROL_BYTES = 16 << 20;
/** Data members up to this size are inflated in one call; larger ones are streamed. */
const INFLATE_AT_ONCE = 4 << 20;

interface Member {
  name: string;
  offset: number;
  size: number;
}

type Compression = 'none' | 'gz' | 'xz';

function compressionOf(name: string, stem: string): Compression {
  if (name === stem) return 'none';
  if (name === `${stem}.gz`) return 'gz';
  if (name === `${stem}.xz`) return 'xz';
  throw new Unsupported(`member ${name}`);
}

/** A file read whole when small (most packages: one read instead of a dozen), else by position. */
interface Source {
  file: string;
  size: number;
  /** The whole file, when it was read whole. */
  bytes?: Buffer;
  read(at: number, n: number): Promise<Buffer>;
}

/** Files up to this size are read whole, as long as the batch holds at most BATCH_BYTES of them
 * (xz members wait in memory until the one xz process reads them). */
const READ_WHOLE = 1 << 20;
const BATCH_BYTES = 256 << 20;

/** Small files are read with one synchronous read: for a few KB, a round trip through libuv's
 * thread pool per call (open, stat, read, close) costs more than the read itself. */
async function openSource(file: string, budget: { left: number }): Promise<{ src: Source; close(): Promise<void> }> {
  const { size } = fs.statSync(file);
  if (size <= READ_WHOLE && size <= budget.left) {
    budget.left -= size;
    const bytes = fs.readFileSync(file);
    const src: Source = {
      file,
      size: bytes.length,
      bytes,
      read: (at, n) => {
        if (at + n > bytes.length) throw new Unsupported('short read');
        return Promise.resolve(bytes.subarray(at, at + n));
      },
    };
    return { src, close: () => Promise.resolve() };
  }
  const fd = await fs.promises.open(file, 'r');
  const src: Source = {
    file,
    size,
    async read(at, n) {
      const b = Buffer.alloc(n);
      const { bytesRead } = await fd.read(b, 0, n, at);
      if (bytesRead !== n) throw new Unsupported('short read');
      return b;
    },
  };
  return { src, close: () => fd.close() };
}

/** The three members, in dpkg's order, covering the whole file; anything else is Unsupported. */
async function members(src: Source): Promise<Member[]> {
  const read = (at: number, n: number) => src.read(at, n);
  const fileSize = src.size;
  if ((await read(0, 8)).toString('latin1') !== '!<arch>\n') throw new Unsupported('not ar');
  const out: Member[] = [];
  let at = 8;
  while (at < fileSize) {
    if (out.length === 3) throw new Unsupported('extra members');
    const h = (await read(at, 60)).toString('latin1');
    if (h.slice(58, 60) !== '`\n') throw new Unsupported('ar header');
    // As dpkg reads names (dpkg_ar_normalize_name): GNU ar ends them with a slash.
    const name = h.slice(0, 16).trimEnd().replace(/\/$/, '');
    const sizeText = h.slice(48, 58).trimEnd();
    if (!/^[0-9]+$/.test(sizeText)) throw new Unsupported('ar size');
    const size = Number(sizeText);
    const offset = at + 60;
    if (offset + size > fileSize) throw new Unsupported('truncated');
    out.push({ name, offset, size });
    at = offset + size + (size % 2);
  }
  if (at !== fileSize && at !== fileSize + 1) throw new Unsupported('trailing bytes');
  if (out.length !== 3 || out[0].name !== 'debian-binary') throw new Unsupported('members');
  if (!(await read(out[0].offset, out[0].size)).equals(Buffer.from('2.0\n'))) throw new Unsupported('version');
  return out;
}

/** Lists a tar stream pushed in chunks: names as `dpkg-deb --contents` lets debFiles read them. */
export class TarLister {
  readonly files: string[] = [];
  /** The control file's bytes, when asked for (control members). */
  control?: Buffer;
  private pending = Buffer.alloc(0);
  private skip = 0;
  private keep?: { left: number; parts: Buffer[]; as: 'control' | 'longname' | 'pax' };
  private longName?: string;
  private paxPath?: string;
  private done = false;
  private seenControl = false;

  constructor(private readonly wantControl = false) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length > 0 && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length);
        if (this.keep) {
          const take = Math.min(this.keep.left, n);
          if (take > 0) this.keep.parts.push(buf.subarray(0, take));
          this.keep.left -= take;
        }
        this.skip -= n;
        buf = buf.subarray(n);
        if (this.skip === 0 && this.keep) this.finishKept();
        continue;
      }
      if (buf.length < 512) {
        this.pending = Buffer.from(buf);
        return;
      }
      this.header(buf.subarray(0, 512));
      buf = buf.subarray(512);
    }
  }

  /** The listing; Unsupported when the stream stopped before the archive's end. */
  end(): string[] {
    if (!this.done || this.skip > 0) throw new Unsupported('truncated tar');
    return this.files;
  }

  private finishKept(): void {
    const k = this.keep!;
    this.keep = undefined;
    const body = Buffer.concat(k.parts);
    if (k.as === 'control') this.control = body;
    else if (k.as === 'longname') this.longName = body.toString('latin1').replace(/\0.*$/s, '');
    else {
      // pax records, "<len> key=value\n": a path is used; a size or sparse map is not understood.
      let rest = body.toString('latin1');
      while (rest.length > 0) {
        const m = /^(\d+) /.exec(rest);
        const rec = m ? rest.slice(0, Number(m[1])) : '';
        const eq = rec.indexOf('=');
        if (!m || !rec.endsWith('\n') || eq < 0) throw new Unsupported('pax record');
        const key = rec.slice(m[0].length, eq);
        if (key === 'path') this.paxPath = rec.slice(eq + 1, -1);
        else if (key === 'size' || key.startsWith('GNU.sparse')) throw new Unsupported(`pax ${key}`);
        rest = rest.slice(rec.length);
      }
    }
  }

  private header(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.done = true; // end of archive: what follows is padding
      return;
    }
    const field = (at: number, len: number) =>
      h
        .subarray(at, at + len)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    const chk = field(148, 8).trim();
    if (!/^[0-7]+$/.test(chk) || parseInt(chk, 8) !== sum) throw new Unsupported('tar checksum');
    const sizeText = field(124, 12).trim();
    if (!/^[0-7]*$/.test(sizeText)) throw new Unsupported('tar size'); // base-256: over 8 GB
    const size = sizeText ? parseInt(sizeText, 8) : 0;
    const body = size + ((512 - (size % 512)) % 512);
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
    const magic = h.subarray(257, 263).toString('latin1');
    let name = field(0, 100);
    if (magic === 'ustar\0' && h[345] !== 0) name = `${field(345, 155)}/${name}`;
    else if (magic !== 'ustar ' && magic !== 'ustar\0') throw new Unsupported('tar format');
    if (type === 'L' || type === 'x') {
      if (size > 64 * 1024) throw new Unsupported('long header');
      this.keep = { left: size, parts: [], as: type === 'L' ? 'longname' : 'pax' };
      this.skip = body;
      if (body === 0) this.finishKept();
      return;
    }
    if (type === 'K') {
      this.skip = body; // a long link target: not listed
      return;
    }
    name = this.paxPath ?? this.longName ?? name;
    this.longName = undefined;
    this.paxPath = undefined;
    // Regular (0, 7), hard link (1), symlink (2), devices (3, 4), directory (5), fifo (6).
    if (!'01234567'.includes(type)) throw new Unsupported(`tar type ${type}`);
    if ('2346'.includes(type) && size !== 0) throw new Unsupported('sized special');
    // Only names `tar -tv` prints as they are (no escapes), which debFiles' line parsing reads back whole.
    if (!/^[\x20-\x7e]+$/.test(name) || name.includes('\\') || / -> | link to /.test(name)) {
      throw new Unsupported('name');
    }
    this.skip = body;
    if (this.wantControl && (name === './control' || name === 'control')) {
      if (this.seenControl || (type !== '0' && type !== '7') || size > MAX_CONTROL_BYTES) {
        throw new Unsupported('control entry');
      }
      this.seenControl = true;
      this.keep = { left: size, parts: [], as: 'control' };
      if (body === 0) this.finishKept();
    }
    if (type === '5') return;
    const listed = name.replace(/^\.?\//, '');
    if (listed) this.files.push(listed);
  }
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/** Uncompressed size an .xz member declares in its index: exactly one stream filling the member
 * (header at its start, footer at its end, blocks between), else Unsupported. */
async function xzDeclaredSize(src: Source, m: Member): Promise<number> {
  const read = (at: number, n: number) => src.read(m.offset + at, n);
  if (m.size < 32 || !(await read(0, 6)).equals(XZ_MAGIC)) throw new Unsupported('xz header');
  const foot = await read(m.size - 12, 12);
  if (foot[10] !== 0x59 || foot[11] !== 0x5a) throw new Unsupported('xz footer');
  const indexSize = (foot.readUInt32LE(4) + 1) * 4;
  const indexAt = m.size - 12 - indexSize;
  if (indexAt < 12 || indexSize > 1 << 20) throw new Unsupported('xz index');
  const x = await read(indexAt, indexSize);
  if (x[0] !== 0) throw new Unsupported('xz index');
  let p = 1;
  const varint = () => {
    let v = 0;
    for (let i = 0; i < 9 && p < x.length; i++) {
      const b = x[p++];
      v += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return v;
    }
    throw new Unsupported('xz varint');
  };
  const records = varint();
  let blocks = 0;
  let total = 0;
  for (let i = 0; i < records; i++) {
    const unpadded = varint();
    blocks += unpadded + ((4 - (unpadded % 4)) % 4);
    total += varint();
  }
  if (12 + blocks !== indexAt) throw new Unsupported('xz layout');
  return total;
}

interface XzJob {
  source: Source;
  member: Member;
  /** Declared uncompressed size. */
  size: number;
  /** Called per output chunk; a throw marks the job failed (its package goes to dpkg-deb). */
  sink: (chunk: Buffer) => void;
  failed?: boolean;
}

/** One `xz -dc` over all members, its output cut at each member's declared size. False when xz
 * refused the batch or gave other sizes (then nothing it gave may be used). */
function xzBatch(jobs: XzJob[], signal?: AbortSignal): Promise<boolean> {
  if (jobs.length === 0) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const child = spawn('xz', ['-dc', '-q', '--memlimit-decompress=512MiB'], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: { PATH: process.env.PATH, LC_ALL: 'C' },
      signal,
    });
    let job = 0;
    let left = jobs[0].size;
    let broken = false;
    const advance = () => {
      while (job < jobs.length && left === 0) left = jobs[++job]?.size ?? 0;
    };
    child.stdout.on('data', (chunk: Buffer) => {
      while (chunk.length > 0 && !broken) {
        advance();
        if (job >= jobs.length) {
          broken = true; // more output than the members declared
          return;
        }
        const n = Math.min(left, chunk.length);
        const j = jobs[job];
        if (!j.failed) {
          try {
            j.sink(chunk.subarray(0, n));
          } catch {
            j.failed = true;
          }
        }
        left -= n;
        chunk = chunk.subarray(n);
      }
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => (signal?.aborted ? reject(err) : resolve(false)));
    child.on('close', (code) => {
      if (signal?.aborted) return reject(new Error('cancelled while reading .deb archives'));
      advance();
      resolve(code === 0 && !broken && job >= jobs.length);
    });
    void (async () => {
      try {
        const write = async (c: Buffer) => {
          if (!child.stdin.write(c)) await new Promise((r) => child.stdin.once('drain', r));
        };
        for (const { source, member } of jobs) {
          const { offset, size } = member;
          if (source.bytes) await write(source.bytes.subarray(offset, offset + size));
          else {
            for await (const c of fs.createReadStream(source.file, { start: offset, end: offset + size - 1 })) {
              await write(c as Buffer);
            }
          }
        }
      } finally {
        child.stdin.end();
      }
    })().catch(() => child.kill());
  });
}

interface Pending {
  control: TarLister;
  data: TarLister;
  jobs: XzJob[];
  hashes?: FileHashes;
}

async function open(file: string, budget: { left: number }, signal?: AbortSignal): Promise<Pending> {
  const opened = await openSource(file, budget);
  const src = opened.src;
  try {
    const [, control, data] = await members(src);
    const p: Pending = { control: new TarLister(true), data: new TarLister(), jobs: [] };
    const ctl = compressionOf(control.name, 'control.tar');
    if (control.size > MAX_CONTROL_COMPRESSED) throw new Unsupported('control size');
    if (ctl === 'xz') {
      const declared = await xzDeclaredSize(src, control);
      if (declared > MAX_CONTROL_BYTES) throw new Unsupported('control size');
      p.jobs.push({ source: src, member: control, size: declared, sink: (c) => p.control.push(c) });
    } else {
      const bytes = await src.read(control.offset, control.size);
      p.control.push(ctl === 'gz' ? await gunzip(bytes, MAX_CONTROL_BYTES) : bytes);
    }
    const dat = compressionOf(data.name, 'data.tar');
    if (dat === 'xz') {
      const size = await xzDeclaredSize(src, data);
      p.jobs.push({ source: src, member: data, size, sink: (c) => p.data.push(c) });
    } else if (src.bytes || (dat === 'gz' && data.size <= INFLATE_AT_ONCE)) {
      const bytes = await src.read(data.offset, data.size);
      p.data.push(dat === 'gz' ? await gunzip(bytes, 256 << 20) : bytes);
    } else {
      await streamRange(file, data, (c) => p.data.push(c), dat === 'gz' ? zlib.createGunzip() : undefined, signal);
    }
    if (src.bytes) p.hashes = hashBytes(src.bytes);
    return p;
  } finally {
    await opened.close();
  }
}

/**
 * The control file and file list of each .deb, read without dpkg-deb where possible; `undefined`
 * at a position means "read this one with dpkg-deb" (module comment). Throws only when cancelled.
 */
export async function readDebs(files: string[], signal?: AbortSignal): Promise<(DebParts | undefined)[]> {
  const budget = { left: BATCH_BYTES };
  const pending = await mapLimit(files, 4, async (file) => {
    signal?.throwIfAborted();
    try {
      return await open(file, budget, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      return undefined; // dpkg-deb reads it, and says what is wrong if anything is
    }
  });
  const ok = await xzBatch(
    pending.flatMap((p) => p?.jobs ?? []),
    signal,
  );
  return pending.map((p) => {
    if (!p || (p.jobs.length > 0 && (!ok || p.jobs.some((j) => j.failed)))) return undefined;
    try {
      p.control.end();
      const list = p.data.end();
      if (!p.control.control) return undefined;
      return { control: p.control.control.toString('utf8'), files: list, hashes: p.hashes };
    } catch (err) {
      if (err instanceof Unsupported) return undefined;
      throw err;
    }
  });
}

async function gunzip(bytes: Buffer, max: number): Promise<Buffer> {
  try {
    // Small members inline: the thread pool's round trip costs more than inflating a few KB.
    if (bytes.length < 64 * 1024) return zlib.gunzipSync(bytes, { maxOutputLength: max });
    return await new Promise<Buffer>((resolve, reject) =>
      zlib.gunzip(bytes, { maxOutputLength: max }, (err, b) => (err ? reject(err) : resolve(b))),
    );
  } catch {
    throw new Unsupported('gzip');
  }
}

async function streamRange(
  file: string,
  m: Member,
  sink: (c: Buffer) => void,
  through: zlib.Gunzip | undefined,
  signal?: AbortSignal,
): Promise<void> {
  if (m.size === 0) throw new Unsupported('empty member');
  const raw = fs.createReadStream(file, { start: m.offset, end: m.offset + m.size - 1, signal });
  if (through) raw.on('error', (err) => through.destroy(err));
  const source = through ? raw.pipe(through) : raw;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) sink(chunk);
  } finally {
    raw.destroy();
    through?.destroy();
  }
}
