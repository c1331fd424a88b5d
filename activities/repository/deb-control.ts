// A .deb's control fields, read with dpkg-deb, and the Packages stanza made from them
// (deb-control(5), https://wiki.debian.org/DebianRepository/Format#A.22Packages.22_Indices).
// The fields are kept as the package declares them, in its order; the archive adds Filename,
// Size and the hashes. Package, Version and Architecture must agree with the artifact reference,
// which is what retention, conflicts and clients' `name=version` requests go by.
import fs from 'node:fs';
import path from 'node:path';
import type { ArtifactRef } from '../../common/types';
import { runProcess } from '../exec/process';
import { RepositoryFailure, nonRetryable } from './failures';

export interface ControlField {
  name: string;
  /** The value as written, continuation lines included (each starting with a space). */
  value: string;
}

export function parseControl(text: string): ControlField[] {
  const fields: ControlField[] = [];
  for (const line of text.replace(/\r\n/g, '\n').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (/^[ \t]/.test(line)) {
      if (fields.length === 0) throw new Error('control file starts with a continuation line');
      fields[fields.length - 1].value += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad control line ${JSON.stringify(line)}`);
    fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim() });
  }
  return fields;
}

const ARCHIVE_FIELDS = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256', 'sha512', 'description-md5']);

export function formatStanza(fields: ControlField[]): string {
  return fields.map((f) => `${f.name}: ${f.value}\n`).join('');
}

/** The control stanza of a .deb without the archive's own fields, checked against its reference. */
export async function readDebControl(file: string, ref: ArtifactRef, signal?: AbortSignal): Promise<string> {
  const dir = `${file}.control`;
  // `dpkg-deb -e` extracts into files: its stdout/stderr never mix into the fields.
  const out = await runProcess('dpkg-deb', ['--control', file, dir], { signal });
  signal?.throwIfAborted();
  try {
    if (out.exitCode !== 0) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${ref.file} (${ref.key}) is not a valid .deb: ${out.output.trim().slice(-500)}`,
      );
    }
    let fields: ControlField[];
    try {
      fields = parseControl(await fs.promises.readFile(path.join(dir, 'control'), 'utf8'));
    } catch (err) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${ref.file}: unreadable control file (${(err as Error).message})`,
      );
    }
    const get = (n: string) => fields.find((f) => f.name.toLowerCase() === n.toLowerCase())?.value;
    const declared = { name: get('Package'), version: get('Version'), arch: get('Architecture') };
    if (declared.name !== ref.name || declared.version !== ref.version || declared.arch !== ref.arch) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${ref.file} declares ${declared.name} ${declared.version} ${declared.arch}, ` +
          `but its artifact reference says ${ref.name} ${ref.version} ${ref.arch}`,
        { key: ref.key, declared },
      );
    }
    return formatStanza(fields.filter((f) => !ARCHIVE_FIELDS.has(f.name.toLowerCase())));
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
