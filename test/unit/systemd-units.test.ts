// The systemd units of deploy/systemd give each process the secrets process-env.ts says it may
// hold (the same split the local stack makes), stop workers no sooner than their shutdown grace,
// and keep the builder's hardening compatible with its bubblewrap sandbox.
import fs from 'node:fs';
import path from 'node:path';
import { ORCHESTRATOR_NODE_OPTIONS, secretEnvNames, type StackProcess } from '../../cli/local-stack/process-env';
import { loadConfig } from '../../config/conveyor';
import { shutdownGraceSeconds } from '../../workers/create';

const ROOT = path.resolve(__dirname, '..', '..');
const UNITS = path.join(ROOT, 'deploy', 'systemd');
const EXAMPLE = path.join(ROOT, 'deploy', 'conveyor.example.yml');

const UNIT_OF: Record<StackProcess, string> = {
  api: 'conveyor-api.service',
  orchestrator: 'conveyor-orchestrator.service',
  builder: 'conveyor-builder@.service',
};

type Unit = Record<string, Record<string, string[]>>;

/** Sections → keys → every value given (a key may repeat); comments and blank lines skipped. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not a key=value line: ${line}`);
    const key = line.slice(0, eq).trim();
    (unit[section][key] ??= []).push(line.slice(eq + 1).trim());
  }
  return unit;
}

/** The variable names an EnvironmentFile sets. */
function envFileNames(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.slice(0, l.indexOf('=')));
}

/** The repository's template of an EnvironmentFile= path (/etc/conveyor/api.env → deploy/systemd/env/api.env). */
function envTemplate(unitPath: string): string {
  return path.join(UNITS, 'env', path.basename(unitPath.replace(/^-/, '')));
}

function seconds(value: string): number {
  const m = /^(\d+)\s*(s|min|m)?$/.exec(value);
  if (!m) throw new Error(`not a time span this test reads: ${value}`);
  return Number(m[1]) * (m[2] === 'min' || m[2] === 'm' ? 60 : 1);
}

const config = loadConfig(EXAMPLE, {});
const secrets = secretEnvNames(config);
const allSecrets = new Set(Object.values(secrets).flat());
const units = Object.fromEntries(
  (Object.keys(UNIT_OF) as StackProcess[]).map((role) => [
    role,
    parseUnit(fs.readFileSync(path.join(UNITS, UNIT_OF[role]), 'utf8')),
  ]),
) as Record<StackProcess, Unit>;

describe.each(Object.keys(UNIT_OF) as StackProcess[])('deploy/systemd unit of the %s', (role) => {
  const service = () => units[role].Service;

  it('has an EnvironmentFile holding exactly the secrets process-env.ts gives this process', () => {
    const files = service().EnvironmentFile ?? [];
    expect(files).toHaveLength(1);
    const names = envFileNames(fs.readFileSync(envTemplate(files[0]), 'utf8'));
    expect([...names].sort()).toEqual([...secrets[role]].sort());
  });

  it('puts no secret in its Environment= lines', () => {
    const names = (service().Environment ?? []).map((e) => e.replace(/^"/, '').split('=')[0]);
    expect(names.filter((n) => allSecrets.has(n))).toEqual([]);
  });

  it('restarts on failure, after a pause', () => {
    expect(service().Restart).toEqual(['on-failure']);
    expect(service().RestartSec).toHaveLength(1);
    expect(seconds(service().RestartSec[0])).toBeGreaterThan(0);
  });

  it('stops the main process first (KillMode=mixed) and forbids new privileges', () => {
    expect(service().KillMode).toEqual(['mixed']);
    expect(service().NoNewPrivileges).toEqual(['yes']);
    // V8's JIT needs writable and executable memory.
    expect(service().MemoryDenyWriteExecute).toBeUndefined();
  });

  it('reads the shared config file', () => {
    expect(service().ExecStart[0]).toContain('--config /etc/conveyor/conveyor.yml');
  });
});

describe('deploy/systemd: users, distros and stop timeouts', () => {
  it('runs the API and the orchestrator as users of their own, never root', () => {
    expect(units.api.Service.User).toEqual(['conveyor-api']);
    expect(units.orchestrator.Service.User).toEqual(['conveyor-orchestrator']);
    const sysusers = fs.readFileSync(path.join(UNITS, 'conveyor.sysusers.conf'), 'utf8');
    for (const user of ['conveyor-api', 'conveyor-orchestrator', 'conveyor-sandbox']) {
      expect(sysusers).toMatch(new RegExp(`^u ${user} `, 'm'));
    }
  });

  it('serves the instance distro in the builder (`conveyor-builder@bookworm` → --distro bookworm)', () => {
    expect(units.builder.Service.ExecStart[0]).toMatch(/ --distro %i( |$)/);
  });

  it("bounds the orchestrator's heap as the local stack does", () => {
    expect(units.orchestrator.Service.Environment).toContain(`NODE_OPTIONS=${ORCHESTRATOR_NODE_OPTIONS}`);
    expect(units.builder.Service.Environment ?? []).not.toContainEqual(expect.stringMatching(/^NODE_OPTIONS=/));
  });

  it('gives workers longer to stop than their shutdown grace', () => {
    const grace = shutdownGraceSeconds(config);
    for (const role of ['orchestrator', 'builder'] as const) {
      expect(seconds(units[role].Service.TimeoutStopSec[0])).toBeGreaterThan(grace);
    }
  });

  it('keeps out of the builder the hardening that breaks bubblewrap, its cgroups and loop devices', () => {
    const breaking = [
      'ProtectKernelTunables',
      'ProtectKernelLogs',
      'ProtectProc',
      'ProcSubset',
      'RestrictNamespaces',
      'PrivateUsers',
      'SystemCallFilter',
      'ProtectControlGroups',
      'PrivateDevices',
      'DeviceAllow',
      'ProtectClock',
      'RestrictSUIDSGID',
      'UMask',
    ];
    expect(breaking.filter((k) => units.builder.Service[k])).toEqual([]);
    // Root, so it can drop each step to the sandbox uid (setpriv) and make its cgroup and volume.
    expect(units.builder.Service.User).toEqual(['root']);
  });
});
