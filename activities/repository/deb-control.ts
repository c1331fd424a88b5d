// A .deb's control fields, read with dpkg-deb, and the Packages stanza made from them
// (deb-control(5), Debian policy §5.1,
// https://wiki.debian.org/DebianRepository/Format#A.22Packages.22_Indices).
// The fields are kept as the package declares them, in its order; the archive adds Filename,
// Size and the hashes. Package, Version and Architecture must agree with the artifact reference,
// which is what retention, conflicts and clients' `name=version` requests go by.
// The stanza is copied into an index we sign, so the control file is hostile input: a field name
// with a space, a field the index writer owns (`Filename: ../../evil`, `SHA256:`), a second
// paragraph or a line apt could read as a paragraph break is refused as BadPackage naming the
// field, never filtered or passed through. The package stage runs the same check (inspect-package.ts).
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

/** A control file that cannot be copied into a Packages index as it is. */
export class ControlError extends Error {
  constructor(
    message: string,
    /** The field at fault, when there is one. */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Field names as deb-control(5) writes them, narrowed to what Debian's archives use: letters,
 * digits and hyphens, starting with a letter; no space before the colon. */
export const FIELD_NAME = /^[A-Za-z][A-Za-z0-9-]*$/;

/** Fields the index writer sets itself (apt-format.ts) or that only an archive may set: a package
 * declaring one could point apt at another file or hash. Lower-case. */
export const INDEX_FIELDS = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256', 'sha512', 'description-md5']);

// C0 controls and DEL except TAB (a newline is a line break here, never part of a value).
// eslint-disable-next-line no-control-regex
const CONTROL_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * The fields of a binary package's control file, or a ControlError naming what is wrong. Strict
 * where Debian policy (§5.1) leaves parsers room, because apt reads the Packages index we sign, not
 * this file: one paragraph only (an empty line ends it, and anything after it would become a
 * stanza of its own), continuation lines start with a space or tab and are never whitespace-only
 * (parsers may take those as paragraph separators; policy's empty line in a value is ` .`), no
 * field twice, no carriage returns or other control characters, and no field the index writer
 * owns. Comment lines (`#` in column 1) are dropped: they never reach the index.
 */
export function parseControl(text: string): ControlField[] {
  const fields: ControlField[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  let ended = false;
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}`;
    const last = fields[fields.length - 1];
    if (line.includes('\r')) {
      throw new ControlError(
        `${where} of the control file holds a carriage return${last ? ` (field ${JSON.stringify(last.name)})` : ''}; control files use LF line ends`,
        last?.name,
      );
    }
    if (line === '') {
      if (fields.length > 0) ended = true;
      continue;
    }
    if (line.startsWith('#')) continue;
    if (ended) {
      const name = line.slice(0, Math.max(line.indexOf(':'), 0)) || line.slice(0, 40);
      throw new ControlError(
        `the control file has a second paragraph (${where}, ${JSON.stringify(name)} after an empty line); ` +
          "a binary package's control file is one paragraph, and a second one would become a stanza of its own in the index",
        name,
      );
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!last) throw new ControlError(`the control file starts with a continuation line (${where})`);
      if (line.trim() === '') {
        throw new ControlError(
          `field ${JSON.stringify(last.name)} has a continuation line of only whitespace (${where}), which apt may read ` +
            'as the end of the stanza; write " ." for an empty line',
          last.name,
        );
      }
      if (CONTROL_CHAR.test(line)) {
        throw new ControlError(`field ${JSON.stringify(last.name)} holds a control character (${where})`, last.name);
      }
      last.value += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) {
      throw new ControlError(
        `${where} of the control file, ${JSON.stringify(line.slice(0, 60))}, is neither a "Name: value" field nor a continuation line`,
      );
    }
    const name = line.slice(0, colon);
    if (!FIELD_NAME.test(name)) {
      throw new ControlError(
        `bad field name ${JSON.stringify(name)} (${where}): field names are letters, digits and hyphens, ` +
          'starting with a letter, with no space before the colon',
        name,
      );
    }
    if (INDEX_FIELDS.has(name.toLowerCase())) {
      throw new ControlError(
        `field ${JSON.stringify(name)} (${where}) is set by the repository index (Filename, Size, MD5sum, SHA1, SHA256, ` +
          'SHA512, Description-md5); a package must not declare it',
        name,
      );
    }
    if (seen.has(name.toLowerCase())) {
      throw new ControlError(`field ${JSON.stringify(name)} appears twice (${where})`, name);
    }
    const value = line.slice(colon + 1);
    if (CONTROL_CHAR.test(value)) {
      throw new ControlError(`field ${JSON.stringify(name)} holds a control character (${where})`, name);
    }
    seen.add(name.toLowerCase());
    fields.push({ name, value: value.trim() });
  }
  if (fields.length === 0) throw new ControlError('the control file has no fields');
  return fields;
}

export function formatStanza(fields: ControlField[]): string {
  return fields.map((f) => `${f.name}: ${f.value}\n`).join('');
}

/** The package's own stanza as the index will print it, or a BadPackage naming the field: checked
 * again on every index build, so a stanza kept in an older state manifest cannot add a line either. */
export function checkedStanza(stanza: string, what: string): string {
  try {
    return formatStanza(parseControl(stanza));
  } catch (err) {
    if (!(err instanceof ControlError)) throw err;
    throw nonRetryable(RepositoryFailure.BadPackage, `${what}: ${err.message}`, { field: err.field });
  }
}

/** The stanza of a control file's text, checked (parseControl) and held against the reference:
 * Package, Version and Architecture must be what the reference says. BadPackage otherwise. */
export function controlStanza(text: string, ref: ArtifactRef): string {
  let fields: ControlField[];
  try {
    fields = parseControl(text);
  } catch (err) {
    if (!(err instanceof ControlError)) throw err;
    throw nonRetryable(RepositoryFailure.BadPackage, `${ref.file} (${ref.key}): ${err.message}`, {
      key: ref.key,
      field: err.field,
    });
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
  return formatStanza(fields);
}

/** The control stanza of a .deb without the archive's own fields, checked against its reference,
 * read with dpkg-deb (the path for what deb-archive.ts leaves to it). */
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
    let text: string;
    try {
      text = await fs.promises.readFile(path.join(dir, 'control'), 'utf8');
    } catch (err) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${ref.file} (${ref.key}): unreadable control file (${(err as Error).message})`,
        { key: ref.key },
      );
    }
    return controlStanza(text, ref);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
