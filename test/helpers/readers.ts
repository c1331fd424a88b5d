// Real apt-get and dnf as plain readers of a published repository, in a temp dir, over HTTP from
// the local S3 endpoint: the proof that a client accepts what we publish. Each keeps its own
// state and shuts out the host's configuration (apt.conf.d; dnf.conf's skip_if_unavailable=True,
// which would turn a refused repository into an empty one). Options: shared/FACTS.md.
import fs from 'node:fs';
import path from 'node:path';
import { runProcess, type RunOutcome } from '../../activities/exec/process';

/** apt-get as a plain reader in `dir`: its own state, lists, sources and no host apt.conf.d.
 * `contents`: also fetch Contents-<arch> (apt-file's index target, from its own apt.conf.d file). */
export async function aptClient(
  dir: string,
  repoUrl: string,
  suite: string,
  keyUrl: string,
  o: { arch?: string; contents?: boolean } = {},
) {
  for (const d of ['lists/partial', 'archives/partial', 'dl', 'parts', 'etc/apt/preferences.d'])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  const key = await fetch(keyUrl);
  if (key.status !== 200) throw new Error(`cannot fetch the published key ${keyUrl}: HTTP ${key.status}`);
  fs.writeFileSync(path.join(dir, 'key.asc'), await key.text());
  fs.writeFileSync(path.join(dir, 'status'), '');
  fs.writeFileSync(path.join(dir, 'sources.list'), `deb [signed-by=${dir}/key.asc] ${repoUrl} ${suite} main\n`);
  // The host's apt.conf.d (hooks, proxies, GzipIndexes) stays out: APT_CONFIG is read before it.
  fs.writeFileSync(path.join(dir, 'apt.conf'), `Dir::Etc::Parts "${dir}/parts";\n`);
  if (o.contents) fs.copyFileSync('/etc/apt/apt.conf.d/50apt-file.conf', path.join(dir, 'parts', '50apt-file.conf'));
  const opts = [
    `Dir=${dir}`,
    `Dir::State::Lists=${dir}/lists`,
    `Dir::State::status=${dir}/status`,
    `Dir::Cache::Archives=${dir}/archives`,
    `Dir::Etc::SourceList=${dir}/sources.list`,
    'Dir::Etc::SourceParts=-',
    `APT::Architecture=${o.arch ?? 'amd64'}`,
    'Debug::NoLocking=1',
    'APT::Sandbox::User=root',
    'Acquire::Retries=0',
    'Acquire::Languages=none',
  ].flatMap((o) => ['-o', o]);
  const env = { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf') };
  const apt = (args: string[]): Promise<RunOutcome> =>
    runProcess('apt-get', [...opts, ...args], { cwd: path.join(dir, 'dl'), env });
  return {
    apt,
    update: () => apt(['update']),
    /** `apt-cache policy [names…]`: without names, the sources with their origin and label. */
    policy: (...names: string[]) => runProcess('apt-cache', [...opts, 'policy', ...names], { env }),
    /** `apt-file search` over this client's lists (after an update with `contents`). */
    fileSearch: (pattern: string) => runProcess('apt-file', [...opts, 'search', pattern], { env }),
    download: (spec: string) => apt(['download', spec]),
    file: (name: string) => path.join(dir, 'dl', name),
  };
}

export interface DnfOptions {
  baseUrl: string;
  keyUrl: string;
  gpgcheck?: boolean;
  repoGpgcheck?: boolean;
  /** dnf's metadata_expire (default 0: always refetch); a large value keeps cached metadata. */
  metadataExpire?: string;
}

/** dnf as a reader in `dir`: its own config (the host's says skip_if_unavailable=True, which
 * would turn a refused repository into an empty one), installroot, repos and cache. */
export function dnfClient(dir: string, o: DnfOptions) {
  for (const d of ['repos.d', 'cache', 'root', 'dl']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const flag = (b: boolean | undefined) => (b === false ? 0 : 1);
  fs.writeFileSync(path.join(dir, 'dnf.conf'), '[main]\ngpgcheck=1\nskip_if_unavailable=False\nbest=True\n');
  fs.writeFileSync(
    path.join(dir, 'repos.d', 'conveyor.repo'),
    [
      '[conveyor]',
      'name=conveyor',
      `baseurl=${o.baseUrl}`,
      'enabled=1',
      `gpgcheck=${flag(o.gpgcheck)}`,
      `repo_gpgcheck=${flag(o.repoGpgcheck)}`,
      `gpgkey=${o.keyUrl}`,
      `metadata_expire=${o.metadataExpire ?? '0'}`,
      '',
    ].join('\n'),
  );
  const base = [
    `--config=${dir}/dnf.conf`,
    `--installroot=${dir}/root`,
    `--setopt=reposdir=${dir}/repos.d`,
    `--setopt=cachedir=${dir}/cache`,
    '--releasever=9',
    '--disablerepo=*',
    '--enablerepo=conveyor',
    '--assumeyes',
  ];
  return {
    makecache: () => runProcess('dnf', [...base, '--noplugins', 'makecache']),
    // `download` is a plugin; its sibling `local` must stay off (FACTS.md).
    download: (spec: string) =>
      runProcess('dnf', [...base, '--disableplugin=local', 'download', `--destdir=${dir}/dl`, spec]),
    install: (spec: string) => runProcess('dnf', [...base, '--noplugins', 'install', spec]),
    installed: (name: string) => runProcess('rpm', ['--root', `${dir}/root`, '-q', name]),
    file: (name: string) => path.join(dir, 'dl', name),
  };
}
