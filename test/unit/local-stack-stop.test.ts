// `conveyor dev --stop` returns only once the stack's process is gone (cli/local-stack/stack.ts,
// stopRunningStack): a stack removes its stack file before it exits, so a stop that watched the
// file said "stopped" while the process was still there (seen once on a loaded machine by
// local-stack.test.ts). Real processes stand in for the stack: sh with a SIGTERM trap.
import { spawn } from 'node:child_process';
import { stopRunningStack } from '../../cli/local-stack/stack';
import { hasExited, isAlive } from '../../cli/local-stack/services';

/** A process group led by sh running `trap`; resolves once it has installed the trap. */
async function stack(trap: string): Promise<number> {
  const child = spawn('sh', ['-c', `${trap}; echo ready; while :; do sleep 0.1; done`], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
  return child.pid!;
}

describe('conveyor dev --stop', () => {
  it('waits for a stack that takes its time to exit after SIGTERM', async () => {
    const pid = await stack(`trap 'sleep 1; exit 0' TERM`);
    const t0 = Date.now();
    await expect(stopRunningStack(pid, 10_000)).resolves.toBe('stopped');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(hasExited(pid)).toBe(true);
  });

  it('kills the group of a stack that ignores SIGTERM once the grace is over, and says so', async () => {
    const pid = await stack(`trap '' TERM`);
    await expect(stopRunningStack(pid, 500)).resolves.toBe('killed');
    expect(hasExited(pid)).toBe(true);
  });

  it('treats a process already gone as stopped', async () => {
    const pid = await stack(`trap 'exit 0' TERM`);
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid) && !hasExited(pid)) await new Promise((r) => setTimeout(r, 20));
    await expect(stopRunningStack(pid, 1_000)).resolves.toBe('stopped');
  });
});
