// The orchestrator process refuses settings that are only safe on the local stack, saying how to
// fix them, before it connects to anything.
import { spawnSync } from 'node:child_process';
import { ROOT } from '../../cli/local-stack/tools';
import { entry } from '../helpers/entry';
import { testConfig } from '../helpers/stack';

describe('workers/orchestrator.ts refusals', () => {
  it('refuses the local host executor outside the local stack', () => {
    const config = testConfig([{ name: 'acme/widget', cloneUrl: '/nonexistent.git', steps: { unit: 'true' } }], {
      aws: { region: 'us-east-1', endpoint: 'https://s3.example.com' },
      fleet: { hostsDir: 'hosts' },
    });
    const orchestrator = entry('orchestrator', ['--config', config.file]);
    const r = spawnSync(orchestrator.command, orchestrator.args, {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60000,
      env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', AWS_ENDPOINT_URL: '' },
    });
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      'fleet.hostsDir is set but aws.endpoint https://s3.example.com is not on loopback: the local executor runs host commands as root',
    );
    expect(r.stdout + r.stderr).toContain('remove fleet.hostsDir and tag staging instances ConveyorExecutor=ssm');
  });
});
