// Every value that reaches a host's shell passes one of these strict patterns first. The scripts
// read values from environment variables (local) or from `export NAME='…'` lines quoted here
// (ssh, ssm: neither carries a client's environment reliably), so quoting alone would already keep
// them data; the patterns are the second wall, and they also keep values out of the files the
// scripts write (sources.list, .repo) where a newline or a space would change their meaning.
import { HostExecLimits, hostExecRefusal } from '../../common/host-exec';
import { FleetFailure, fleetFailure } from './failures';

/** deb (lowercase) and rpm (mixed case, `_`) package names. */
const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9+._-]{0,127}$/;
/** `<version>-<build>`: one hyphen (rpm's VERSION-RELEASE), no epoch, no spaces or quotes. */
const VERSION = /^[0-9][A-Za-z0-9.+~_]{0,63}-[A-Za-z0-9.+~_]{1,63}$/;
/** http(s), a host name or IPv4 address, an optional port, a plain path: no query, no quotes,
 * no spaces, no `$`. */
const URL = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~%+/-]*)?$/;
const SUITE = /^[a-z0-9][a-z0-9.+_-]{0,63}$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;

function bad(what: string, value: unknown, want: string): never {
  throw fleetFailure(FleetFailure.BadInput, `refused ${what} ${JSON.stringify(value)}: ${want}`);
}

export function checkPackageName(name: string): string {
  if (typeof name !== 'string' || !PACKAGE_NAME.test(name)) {
    bad('package name', name, 'letters, digits and + . _ - only, starting with a letter or digit');
  }
  return name;
}

export function checkVersion(version: string): string {
  if (typeof version !== 'string' || !VERSION.test(version)) {
    bad('version', version, 'must be <version>-<build> (digits, letters, . + ~ _; one hyphen; no epoch)');
  }
  return version;
}

export function checkUrl(what: string, url: string): string {
  if (typeof url !== 'string' || !URL.test(url) || url.length > 512) {
    bad(what, url, 'must be an http(s) URL of host, port and path only, without quotes, spaces or a query');
  }
  return url.replace(/\/+$/, '');
}

export function checkSuite(suite: string | undefined): string {
  if (typeof suite !== 'string' || !SUITE.test(suite)) bad('apt suite', suite, 'must be <codename>-<channel>');
  return suite;
}

export function checkEnv(env: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) bad('environment variable name', k, 'must be an upper-case shell name');
    if (typeof v !== 'string' || v.includes('\0')) bad(`value of ${k}`, v, 'must be a string without NUL');
  }
  return env;
}

/** A host-exec argv: the verify stage's validator checked it already; checked again here, where it
 * becomes a shell line. */
export function checkArgv(argv: string[]): string[] {
  const why = hostExecRefusal({ host: 'h', argv }, ['h']);
  if (why) bad('argv', Array.isArray(argv) ? argv.slice(0, 3) : argv, why);
  return argv;
}

/** A host-exec stdin (base64, capped) as bytes; undefined for none. */
export function checkStdin(stdin: string | undefined): Buffer | undefined {
  if (stdin === undefined || stdin === '') return undefined;
  const why = hostExecRefusal({ host: 'h', argv: ['x'], stdin }, ['h']);
  if (why) bad('stdin', `${stdin.slice(0, 16)}…`, why);
  const bytes = Buffer.from(stdin, 'base64');
  if (bytes.length > HostExecLimits.stdinBytes) bad('stdin', `${bytes.length} bytes`, 'too large');
  return bytes;
}

/** One shell word, whatever the text: `'…'` with each `'` as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `export NAME='value'` lines that give a script its values where no environment can be passed. */
export function exportLines(env: Record<string, string>): string {
  return Object.entries(checkEnv(env))
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join('');
}
