// The built-in packager: the package step installs the project into an empty staging root
// (`make install DESTDIR=$CONVEYOR_ROOT`) and Conveyor turns that tree into a .deb (dpkg-deb
// --build --root-owner-group) or an .rpm (rpmbuild from a generated spec in a private _topdir).
//
// Hazards:
// - Config values land in a control file and a spec, where a newline starts a new field or
//   section and, in a spec, `%` starts a macro: newlines and control characters are refused and
//   `%` is escaped, so a trusted but careless value cannot change the package's meaning.
// - rpmbuild's defaults rewrite what it packages (strip, shebang mangling, debuginfo, build-id
//   links) and add automatic requirements such as /bin/sh that a minimal host may not provide:
//   all of that is switched off, so the rpm holds exactly the staged bytes and declared Requires.
// - %files must not claim system directories (/usr, /usr/bin): rpm would make this package
//   their owner. Files and symlinks are listed one by one; directories only when not standard.
// - SOURCE_DATE_EPOCH (the commit time) clamps timestamps, so rebuilding a commit gives the same
//   bytes: a re-run's package then matches the stored one, not just its name.
// - Every regular file staged under /etc is a configuration file, as Debian policy and debhelper
//   have it: listed in DEBIAN/conffiles, `%config(noreplace)` in the spec. An upgrade then keeps
//   an operator's edited /etc/<name>/… instead of overwriting it (dpkg asks or keeps; rpm writes
//   the new one beside it as .rpmnew).
// - `compression` picks the payload compressor of both formats at a fixed level (xz 6, gzip 6,
//   zstd 3); unset, each tool's default, so existing packages keep their bytes.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { BuiltinPackageSpec, DistroSpec } from '../../common/types';
import { runProcess } from '../exec/process';
import { toolEnv } from './inspect-package';

export interface BuiltinPackageInput {
  spec: BuiltinPackageSpec;
  distro: string;
  distroSpec: DistroSpec;
  version: string;
  build: number;
  /** The staged tree (CONVEYOR_ROOT). */
  root: string;
  /** Where the package file goes (CONVEYOR_OUT). */
  out: string;
  /** A scratch directory of our own (rpm's _topdir, HOME for the tools). */
  scratch: string;
  sourceDateEpoch: string;
  signal?: AbortSignal;
  /** Receives the tools' output for the step's log. */
  note(line: string): void;
}

/** Builds the package and returns its file name in `out`. */
export async function builtinPackage(input: BuiltinPackageInput): Promise<string> {
  const { spec, distroSpec } = input;
  const bad = (why: string) =>
    ApplicationFailure.nonRetryable(`built-in packager for ${input.distro}: ${why}`, FailureType.BadPackage);
  const badConfig = (field: string, why: string) =>
    ApplicationFailure.nonRetryable(`packaging.builtin.${field} of ${input.distro}: ${why}`, FailureType.BadConfig);
  const fields: [string, string][] = [
    ['name', spec.name],
    ['maintainer', spec.maintainer],
    ['description', spec.description],
    ...spec.depends[distroSpec.format].map((d, i): [string, string] => [`depends.${distroSpec.format}[${i}]`, d]),
  ];
  for (const [field, value] of fields) {
    // eslint-disable-next-line no-control-regex
    if (!value.trim() || /[\x00-\x1f\x7f]/.test(value)) {
      throw badConfig(field, 'must be one line of text without control characters');
    }
  }
  const arch = packageArch(spec.arch ?? distroSpec.arch, distroSpec.format);
  if (!/^[a-z0-9_]+$/.test(arch)) throw badConfig('arch', `${JSON.stringify(arch)} is not an architecture`);

  const entries = walk(input.root);
  if (!entries.some((e) => e.type !== 'dir')) {
    throw bad('the package step staged no files into $CONVEYOR_ROOT (e.g. `make install DESTDIR=$CONVEYOR_ROOT`)');
  }
  const other = entries.find((e) => e.type === 'other');
  if (other) throw bad(`staged ${other.path} is not a file, directory or symlink`);

  return distroSpec.format === 'deb' ? buildDeb(input, arch, entries, bad) : buildRpm(input, arch, entries, bad);
}

type Bad = (why: string) => ApplicationFailure;

interface Entry {
  /** Absolute path as installed, e.g. /usr/bin/widget. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
}

/** `all` and `noarch` mean the same in both formats; common names of the same CPU are mapped. */
export function packageArch(arch: string, format: 'deb' | 'rpm'): string {
  const deb: Record<string, string> = { noarch: 'all', x86_64: 'amd64', aarch64: 'arm64' };
  const rpm: Record<string, string> = { all: 'noarch', amd64: 'x86_64', arm64: 'aarch64' };
  return (format === 'deb' ? deb : rpm)[arch] ?? arch;
}

function walk(root: string): Entry[] {
  const out: Entry[] = [];
  const visit = (dir: string, rel: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const p = `${rel}/${name}`;
      const st = fs.lstatSync(abs);
      if (st.isDirectory()) {
        out.push({ path: p, type: 'dir', size: 0 });
        visit(abs, p);
      } else if (st.isFile()) out.push({ path: p, type: 'file', size: st.size });
      else if (st.isSymbolicLink()) out.push({ path: p, type: 'symlink', size: 0 });
      else out.push({ path: p, type: 'other', size: 0 });
    }
  };
  visit(root, '');
  return out;
}

async function tool(input: BuiltinPackageInput, bad: Bad, file: string, args: string[], env: NodeJS.ProcessEnv) {
  input.note(`$ ${file} ${args.join(' ')}`);
  const r = await runProcess(file, args, { signal: input.signal, env });
  if (r.output.trim()) input.note(r.output.trim());
  if (r.cancelled) throw new CancelledFailure('built-in packager cancelled');
  if (r.exitCode !== 0) throw bad(`${file} failed (${r.exitCode ?? r.signal}): ${r.tail.trim().slice(-1000)}`);
}

async function buildDeb(input: BuiltinPackageInput, arch: string, entries: Entry[], bad: Bad): Promise<string> {
  const { spec, root } = input;
  if (fs.existsSync(path.join(root, 'DEBIAN'))) {
    throw bad('the staged tree has a DEBIAN directory; the built-in packager writes the control file itself');
  }
  const version = `${input.version}-${input.build}`;
  const installedKiB = entries.reduce((n, e) => n + Math.ceil(e.size / 1024), 0);
  const fields: [string, string][] = [
    ['Package', spec.name],
    ['Version', version],
    ['Architecture', arch],
    ['Maintainer', spec.maintainer],
    ['Installed-Size', String(Math.max(1, installedKiB))],
  ];
  const depends = spec.depends.deb.map((d) => d.trim());
  if (depends.length > 0) fields.push(['Depends', depends.join(', ')]);
  fields.push(['Description', spec.description.trim()]);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { mode: 0o755 });
  fs.chmodSync(path.join(root, 'DEBIAN'), 0o755);
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), fields.map(([k, v]) => `${k}: ${v}\n`).join(''), {
    mode: 0o644,
  });
  const conffiles = configFiles(entries);
  if (conffiles.length > 0) {
    fs.writeFileSync(path.join(root, 'DEBIAN', 'conffiles'), conffiles.map((f) => `${f}\n`).join(''), { mode: 0o644 });
  }
  const file = `${spec.name}_${version}_${arch}.deb`;
  const level = spec.compression ? COMPRESSION[spec.compression] : undefined;
  await tool(
    input,
    bad,
    'dpkg-deb',
    [
      ...(spec.compression ? [`-Z${spec.compression}`, `-z${level}`] : []),
      '--build',
      '--root-owner-group',
      root,
      path.join(input.out, file),
    ],
    toolEnv({ SOURCE_DATE_EPOCH: input.sourceDateEpoch, HOME: input.scratch }),
  );
  return file;
}

/** Level of each payload compressor (both formats). */
const COMPRESSION = { xz: 6, gzip: 6, zstd: 3 } as const;
/** rpm's name of each compressor, for `_binary_payload w<level>.<io>`. */
const RPM_PAYLOAD = { xz: 'xzdio', gzip: 'gzdio', zstd: 'zstdio' } as const;

/** Staged regular files under /etc: the package's configuration files. */
function configFiles(entries: Entry[]): string[] {
  return entries.filter((e) => e.type === 'file' && e.path.startsWith('/etc/')).map((e) => e.path);
}

const SYSTEM_DIRS = new Set([
  ...['/bin', '/boot', '/etc', '/home', '/lib', '/lib64', '/opt', '/root', '/run', '/sbin', '/srv', '/tmp', '/usr'],
  ...['/var', '/var/lib', '/var/log', '/var/cache', '/var/spool', '/var/tmp', '/var/opt'],
  ...['/usr/bin', '/usr/sbin', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/include', '/usr/share', '/usr/src'],
  ...['/usr/local', '/usr/local/bin', '/usr/local/sbin', '/usr/local/lib', '/usr/local/share', '/usr/local/etc'],
  ...['/usr/share/doc', '/usr/share/info', '/usr/share/licenses', '/usr/share/locale', '/usr/share/man'],
  ...['/usr/share/applications', '/usr/share/icons', '/usr/share/pixmaps', '/usr/share/pkgconfig'],
  ...['/usr/share/bash-completion', '/usr/share/bash-completion/completions', '/usr/share/zsh'],
  ...['/usr/lib/pkgconfig', '/usr/lib64/pkgconfig', '/usr/lib/systemd', '/usr/lib/systemd/system'],
  ...['/usr/lib/systemd/user', '/usr/lib/tmpfiles.d', '/usr/lib/sysusers.d', '/usr/lib/sysctl.d'],
  ...['/etc/default', '/etc/sysconfig', '/etc/systemd', '/etc/systemd/system', '/etc/cron.d', '/etc/logrotate.d'],
  ...['/etc/profile.d', '/etc/sudoers.d', '/etc/security', '/etc/pki'],
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `/usr/share/man/man${n}`),
]);

async function buildRpm(input: BuiltinPackageInput, arch: string, entries: Entry[], bad: Bad): Promise<string> {
  const { spec } = input;
  const esc = (v: string) => v.trim().replace(/%/g, '%%');
  // rpm's %files syntax treats spaces, quotes, globs and `%` specially: plain names only.
  const unsafe = entries.find((e) => !/^[A-Za-z0-9._+@,:=~/-]+$/.test(e.path));
  if (unsafe) throw bad(`staged path ${JSON.stringify(unsafe.path)} has characters the rpm %files list cannot hold`);
  if (!/^[A-Za-z0-9._/+-]+$/.test(input.scratch)) {
    throw ApplicationFailure.nonRetryable(
      `workspace ${input.scratch}: rpmbuild needs a workspace path of letters, digits and . _ / + - (conveyor.yml workspace)`,
      FailureType.BadConfig,
    );
  }

  const top = path.join(input.scratch, 'rpmbuild');
  for (const d of ['rpmbuild/BUILD', 'rpmbuild/BUILDROOT', 'rpmbuild/SPECS', 'tmp']) {
    fs.mkdirSync(path.join(input.scratch, d), { recursive: true });
  }
  const config = new Set(configFiles(entries));
  const files = entries
    .filter((e) => e.type !== 'dir' || !SYSTEM_DIRS.has(e.path))
    .map((e) =>
      e.type === 'dir' ? `%dir "${e.path}"` : config.has(e.path) ? `%config(noreplace) "${e.path}"` : `"${e.path}"`,
    );
  const specText = [
    `Name: ${esc(spec.name)}`,
    `Version: ${input.version}`,
    `Release: ${input.build}`,
    `Summary: ${esc(spec.description)}`,
    'License: unspecified',
    `Packager: ${esc(spec.maintainer)}`,
    `BuildArch: ${arch}`,
    'AutoReqProv: no',
    ...spec.depends.rpm.map((d) => `Requires: ${esc(d)}`),
    '%global debug_package %{nil}',
    '%global __os_install_post %{nil}',
    '%global _build_id_links none',
    '',
    '%description',
    esc(spec.description),
    '',
    '%install',
    `cp -a "${input.root}/." "%{buildroot}/"`,
    '',
    '%files',
    '%defattr(-,root,root,-)',
    ...files,
    '',
  ].join('\n');
  const specFile = path.join(top, 'SPECS', `${spec.name}.spec`);
  fs.writeFileSync(specFile, specText);
  // A large tree (an application with its node_modules) lists tens of thousands of files: the log
  // shows the spec up to its first lines of %files.
  const shown = files.length > 50 ? specText.slice(0, specText.indexOf('%files') + 400) : specText;
  input.note(
    `generated ${spec.name}.spec${shown === specText ? '' : ` (%files: ${files.length} entries, the first shown)`}:\n${shown}`,
  );
  const file = `${spec.name}-${input.version}-${input.build}.${arch}.rpm`;
  await tool(
    input,
    bad,
    'rpmbuild',
    [
      '-bb',
      '--target',
      arch,
      '--define',
      `_topdir ${top}`,
      '--define',
      `_rpmdir ${input.out}`,
      '--define',
      '_rpmfilename %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm',
      '--define',
      'use_source_date_epoch_as_buildtime 1',
      '--define',
      'clamp_mtime_to_source_date_epoch 1',
      '--define',
      '_buildhost conveyor',
      ...(spec.compression
        ? ['--define', `_binary_payload w${COMPRESSION[spec.compression]}.${RPM_PAYLOAD[spec.compression]}`]
        : []),
      '--define',
      `_tmppath ${path.join(input.scratch, 'tmp')}`,
      specFile,
    ],
    toolEnv({ SOURCE_DATE_EPOCH: input.sourceDateEpoch, HOME: input.scratch }),
  );
  return file;
}
