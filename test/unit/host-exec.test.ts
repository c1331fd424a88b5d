// The host-exec request check shared by the verify stage's validator and the execOnHost activity
// (common/host-exec.ts): only this run's hosts, a well-formed argv, a capped base64 stdin, and the
// scripts that carry argv and stdin to a host.
import { execFileSync } from 'node:child_process';
import { base64Bytes, HostExecLimits, hostExecRefusal } from '../../common/host-exec';
import { execScript, remoteScript, withStdinScript } from '../../activities/fleet/scripts';

const HOSTS = ['deb-1', 'deb-2', 'rpm-1'];

describe('host-exec requests', () => {
  it('accepts a command for a host of this run, with or without stdin', () => {
    expect(hostExecRefusal({ host: 'deb-2', argv: ['cat', '/etc/hostname'] }, HOSTS)).toBeUndefined();
    expect(
      hostExecRefusal({ host: 'rpm-1', argv: ['sh'], stdin: Buffer.from('id\n').toString('base64') }, HOSTS),
    ).toBeUndefined();
    // Any bytes in argv words but NUL: they are data, quoted on the host.
    expect(hostExecRefusal({ host: 'deb-1', argv: ['echo', "$(id) `id` ' ;\n✓"] }, HOSTS)).toBeUndefined();
  });

  it('refuses a host that is not of this run, naming the run hosts', () => {
    expect(hostExecRefusal({ host: 'prod-db-1', argv: ['id'] }, HOSTS)).toBe(
      'host "prod-db-1" is not a staging host of this run (its hosts: deb-1, deb-2, rpm-1)',
    );
    expect(hostExecRefusal({ host: 'deb-1', argv: ['id'] }, [])).toMatch(/its hosts: none/);
  });

  it.each<[string, unknown, RegExp]>([
    ['not an object', 'deb-1 id', /not an object/],
    ['an array', ['deb-1', 'id'], /not an object/],
    ['no host', { argv: ['id'] }, /host must be a host name/],
    ['a host that is not a string', { host: 1, argv: ['id'] }, /host must be a host name/],
    ['no argv', { host: 'deb-1' }, /argv must be a non-empty list/],
    ['an empty argv', { host: 'deb-1', argv: [] }, /argv must be a non-empty list/],
    ['argv as a string', { host: 'deb-1', argv: 'id' }, /argv must be a non-empty list/],
    ['a number in argv', { host: 'deb-1', argv: ['sleep', 1] }, /list of strings/],
    ['a NUL byte', { host: 'deb-1', argv: ['echo', 'a\0b'] }, /NUL/],
    ['an empty command', { host: 'deb-1', argv: ['', 'x'] }, /argv\[0\]\) is empty/],
    ['too many words', { host: 'deb-1', argv: Array(HostExecLimits.argvItems + 1).fill('x') }, /more than 1024/],
    ['too long an argv', { host: 'deb-1', argv: ['echo', 'x'.repeat(HostExecLimits.argvBytes)] }, /longer than/],
    ['an unknown field', { host: 'deb-1', argv: ['id'], env: { A: '1' } }, /unknown field\(s\) in the request: env/],
    ['stdin that is not base64', { host: 'deb-1', argv: ['cat'], stdin: 'not base64!' }, /stdin must be base64/],
    ['stdin as bytes', { host: 'deb-1', argv: ['cat'], stdin: [1, 2] }, /stdin must be base64/],
    [
      'stdin over the cap',
      { host: 'deb-1', argv: ['cat'], stdin: Buffer.alloc(HostExecLimits.stdinBytes + 1).toString('base64') },
      /stdin is larger than 256 KiB/,
    ],
  ])('refuses %s', (_what, req, why) => {
    expect(hostExecRefusal(req, HOSTS)).toMatch(why);
  });

  it('counts decoded stdin bytes without Buffer (the workflow sandbox has none)', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 1000, HostExecLimits.stdinBytes]) {
      const text = Buffer.alloc(n, 7).toString('base64');
      expect(base64Bytes(text)).toBe(n);
    }
    const atCap = Buffer.alloc(HostExecLimits.stdinBytes).toString('base64');
    expect(hostExecRefusal({ host: 'deb-1', argv: ['cat'], stdin: atCap }, HOSTS)).toBeUndefined();
  });
});

describe('host-exec scripts', () => {
  const sh = (script: string) => execFileSync('sh', ['-c', script], { encoding: 'utf8' });

  it('runs argv words as data, never as shell', () => {
    expect(sh(`${execScript(['printf', '%s|', "it's", '$(id)', '`id`', 'a b', ';'])}`)).toBe("it's|$(id)|`id`|a b|;|");
  });

  it('gives an ssh or ssm script its stdin through a here-document, any bytes', () => {
    const bytes = Buffer.from([...Array(256).keys(), 10, 0, 255]);
    const out = execFileSync('sh', ['-c', withStdinScript(execScript(['od', '-An', '-tx1', '-v']), bytes)], {
      encoding: 'utf8',
    });
    expect(out.replace(/\s+/g, '')).toBe(bytes.toString('hex'));
    const host = { instanceId: 'i-0123456789abcdef0', name: 'web-1', distro: 'el9', executor: 'ssm' as const };
    expect(remoteScript({ host, script: 'true' })).toBe('true');
    expect(() => remoteScript({ host, script: 'cat', stdin: Buffer.alloc(64 * 1024 + 1) })).toThrow(
      /more than the 64 KiB an ssh or ssm command can carry/,
    );
  });
});
