// Name, epoch, version, release and arch of an rpm read in-process from its main header
// (https://rpm-software-management.github.io/rpm/manual/format_v4.html): a lead of 96 bytes, the
// signature header padded to 8 bytes, then the main header; a header is a magic, an entry count,
// a data size, 16-byte index entries (tag, type, offset, count) and the data store.
// The publisher checks every incoming rpm against its reference before signing it; one `rpm -qp`
// process per package was that check's whole cost (issue 14, part 5). This reader is strict on
// purpose: anything it does not fully understand (a header that is not the shape rpm writes, a tag
// twice, a type other than the one rpm uses, a string running past the store) answers `undefined`,
// and the caller asks `rpm -qp` instead, whose verdict and error messages are the reference. The
// values it returns are compared with the reference, never used as they are.
import fs from 'node:fs';

const LEAD_MAGIC = 0xedabeedb;
const HEADER_MAGIC = 0x8eade801;
const LEAD_BYTES = 96;
/** rpm's own limits (hdrblob: 0xffff entries, 256 MB of data). */
const MAX_ENTRIES = 0xffff;
const MAX_DATA = 256 * 1024 * 1024;

const TAG = { NAME: 1000, VERSION: 1001, RELEASE: 1002, EPOCH: 1003, ARCH: 1022 } as const;
const STRING = 6;
const INT32 = 4;

export interface RpmNevra {
  name: string;
  /** rpm's EPOCHNUM: 0 when the package declares none. */
  epoch: number;
  version: string;
  release: string;
  arch: string;
}

/** Bytes read at the start of the file in one call: lead, signature header and most main headers
 * (the tags read here sit early in the store); reads past it go to the file. One read instead of a
 * dozen per rpm was most of the publisher's check time for small packages (bench/yum-index.ts).
 * The reads are synchronous: for 64 KiB of a file the kernel has in its cache, a round trip
 * through libuv's thread pool (open, read, close: three per rpm) costs more than the read itself,
 * and a publish checks thousands of rpms (2,000: 190–250 ms asynchronously). */
const WINDOW_BYTES = 64 * 1024;

type Reader = (position: number, length: number) => Promise<Buffer | undefined>;

function windowedReader(fd: number): Reader {
  let window: Buffer | undefined;
  return (position, length) => {
    if (!window) {
      const buf = Buffer.alloc(WINDOW_BYTES);
      window = buf.subarray(0, fs.readSync(fd, buf, 0, WINDOW_BYTES, 0));
    }
    const w = window;
    if (position + length <= w.length) return Promise.resolve(w.subarray(position, position + length));
    // Past the window: the end of a short file (undefined), or a header larger than the window.
    if (w.length < WINDOW_BYTES) return Promise.resolve(undefined);
    const buf = Buffer.alloc(length);
    return Promise.resolve(fs.readSync(fd, buf, 0, length, position) === length ? buf : undefined);
  };
}

/** The header at `at`: its index and where its data store starts; undefined when malformed. */
async function header(readAt: Reader, at: number) {
  const intro = await readAt(at, 16);
  if (!intro || intro.readUInt32BE(0) !== HEADER_MAGIC) return undefined;
  const entries = intro.readUInt32BE(8);
  const dataBytes = intro.readUInt32BE(12);
  if (entries < 1 || entries > MAX_ENTRIES || dataBytes > MAX_DATA) return undefined;
  const index = await readAt(at + 16, entries * 16);
  if (!index) return undefined;
  const store = at + 16 + entries * 16;
  return { index, entries, store, dataBytes, end: store + dataBytes };
}

/** The NEVRA rpm would report, or undefined when the file is not plainly an rpm this reader knows. */
export async function readRpmNevra(file: string): Promise<RpmNevra | undefined> {
  const fd = fs.openSync(file, 'r');
  const readAt = windowedReader(fd);
  try {
    const lead = await readAt(0, LEAD_BYTES);
    // Lead major version 3, type 0 (binary).
    if (!lead || lead.readUInt32BE(0) !== LEAD_MAGIC || lead[4] !== 3 || lead.readUInt16BE(6) !== 0) return undefined;
    const sig = await header(readAt, LEAD_BYTES);
    if (!sig) return undefined;
    const main = await header(readAt, sig.end + ((8 - (sig.end % 8)) % 8));
    if (!main) return undefined;
    const found = new Map<number, { type: number; offset: number; count: number }>();
    for (let i = 0; i < main.entries; i++) {
      const tag = main.index.readUInt32BE(i * 16);
      if (!Object.values(TAG).includes(tag as never)) continue;
      if (found.has(tag)) return undefined;
      found.set(tag, {
        type: main.index.readUInt32BE(i * 16 + 4),
        offset: main.index.readUInt32BE(i * 16 + 8),
        count: main.index.readUInt32BE(i * 16 + 12),
      });
    }
    const text = async (tag: number): Promise<string | undefined> => {
      const e = found.get(tag);
      if (!e || e.type !== STRING || e.count !== 1 || e.offset >= main.dataBytes) return undefined;
      const room = Math.min(4096, main.dataBytes - e.offset);
      const bytes = await readAt(main.store + e.offset, room);
      const nul = bytes?.indexOf(0) ?? -1;
      if (!bytes || nul < 1) return undefined;
      const s = bytes.subarray(0, nul).toString('utf8');
      // Printable ASCII without spaces: anything else is for rpm itself to judge.
      return /^[\x21-\x7e]+$/.test(s) ? s : undefined;
    };
    let epoch = 0;
    const e = found.get(TAG.EPOCH);
    if (e) {
      if (e.type !== INT32 || e.count !== 1 || e.offset % 4 !== 0 || e.offset + 4 > main.dataBytes) return undefined;
      const b = await readAt(main.store + e.offset, 4);
      if (!b) return undefined;
      epoch = b.readUInt32BE(0);
    }
    const [name, version, release, arch] = await Promise.all([TAG.NAME, TAG.VERSION, TAG.RELEASE, TAG.ARCH].map(text));
    if (!name || !version || !release || !arch) return undefined;
    return { name, epoch, version, release, arch };
  } finally {
    fs.closeSync(fd);
  }
}

/** `[epoch:]version-release`, as artifact references write an rpm's version. */
export function evrOf(n: Pick<RpmNevra, 'epoch' | 'version' | 'release'>): string {
  return n.epoch === 0 ? `${n.version}-${n.release}` : `${n.epoch}:${n.version}-${n.release}`;
}
