// The local stack's restart of dead workers (cli/local-stack/supervise.ts), with real processes: a
// process killed with SIGKILL is started again after the backoff and the restart is logged; one
// that keeps dying is started again with a doubling delay; stop() ends it for good.
import path from 'node:path';
import { spawnService } from '../../cli/local-stack/services';
import { supervise } from '../../cli/local-stack/supervise';
import { testTempDir } from '../helpers/temp';

const dir = testTempDir('supervise-');
const sleeper = () => spawnService('sleeper', 'sleep', ['60'], { logFile: path.join(dir, 'sleeper.log') });

describe('supervise', () => {
  it('starts a killed process again after the backoff and logs it; stop() ends it for good', async () => {
    const lines: string[] = [];
    const first = sleeper();
    const svc = supervise(sleeper, first, (l) => lines.push(l), { minBackoffMs: 100 });
    const pid = first.child.pid!;
    process.kill(pid, 'SIGKILL');
    await svc.restarted(1);
    expect(svc.child.pid).not.toBe(pid);
    expect(svc.child.exitCode).toBeNull();
    expect(lines[0]).toBe(`sleeper exited with signal SIGKILL; restarting in 100 ms (see ${dir}/sleeper.log)`);
    expect(lines[1]).toBe(`sleeper restarted (pid ${svc.child.pid}, restart 1)`);
    const last = svc.child;
    await svc.stop();
    expect(last.signalCode).toBe('SIGTERM');
    await new Promise((r) => setTimeout(r, 400));
    expect(svc.restarts).toBe(1);
    expect(lines).toHaveLength(2);
  });

  it('doubles the delay while the process keeps dying, up to the maximum', async () => {
    const lines: string[] = [];
    const crasher = () => spawnService('crasher', 'sh', ['-c', 'exit 3'], { logFile: path.join(dir, 'crasher.log') });
    const svc = supervise(crasher, crasher(), (l) => lines.push(l), { minBackoffMs: 50, maxBackoffMs: 200 });
    await svc.restarted(4);
    await svc.stop();
    const delays = lines.filter((l) => l.includes('exited')).map((l) => Number(/restarting in (\d+) ms/.exec(l)?.[1]));
    expect(lines[0]).toContain('crasher exited with code 3; restarting in 50 ms');
    expect(delays.slice(0, 4)).toEqual([50, 100, 200, 200]);
  });
});
