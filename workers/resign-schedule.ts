// The Temporal Schedule that re-signs APT Releases before their Valid-Until passes
// (workflows/resign-releases.ts). Made or updated by the orchestrator at start, from the config it
// runs with: every deb distro of every repository, in every channel of its branch rules, in both
// environments. It runs every third of the shortest validity (at most daily), so two runs can be
// missed before a client sees an expired Release; overlapping runs are skipped.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { parseS3Url, type ConveyorConfig } from '../config/conveyor';
import type { ResignTarget } from '../workflows/resign-releases';

export const RESIGN_SCHEDULE_ID = 'conveyor-resign-releases';
const DEFAULT_VALID_DAYS = 7;

/** Every APT suite the config publishes to, once per environment, channel and distro; with
 * `yum`, every YUM repository too (a key rotation). */
export function resignTargets(config: ConveyorConfig, o: { yum?: boolean } = {}): ResignTarget[] {
  const seen = new Set<string>();
  const targets: ResignTarget[] = [];
  for (const environment of ['staging', 'production'] as const) {
    const bucket = parseS3Url(config.storage[environment]).bucket;
    for (const repo of config.repositories) {
      for (const rule of repo.branches) {
        for (const distro of repo.distros) {
          const distroSpec = config.distros[distro];
          if (distroSpec?.format !== 'deb' && !(o.yum && distroSpec?.format === 'rpm')) continue;
          const key = `${environment} ${rule.channel} ${distro}`;
          if (seen.has(key)) continue;
          seen.add(key);
          targets.push({ environment, bucket, channel: rule.channel, distro, distroSpec: { ...distroSpec } });
        }
      }
    }
  }
  return targets;
}

/** Seconds between runs: a third of the shortest Valid-Until, at most a day, at least a minute;
 * undefined when no Release expires (validDays 0 everywhere). */
export function resignEverySeconds(config: ConveyorConfig): number | undefined {
  const v = config.signing?.validDays;
  const days = (typeof v === 'number' ? [v] : [v?.staging, v?.production]).map((d) => d ?? DEFAULT_VALID_DAYS);
  const shortest = Math.min(...days.filter((d) => d > 0));
  if (!Number.isFinite(shortest)) return undefined;
  return Math.max(60, Math.min(86_400, Math.floor((shortest * 86_400) / 3)));
}

/** Creates the schedule, or updates it to the current config; deletes it when nothing expires. */
export async function ensureResignSchedule(client: Client, config: ConveyorConfig): Promise<string | undefined> {
  const every = resignEverySeconds(config);
  const targets = resignTargets(config);
  const handle = client.schedule.getHandle(RESIGN_SCHEDULE_ID);
  if (every === undefined || targets.length === 0) {
    await handle.delete().catch(() => undefined);
    return undefined;
  }
  const options: ScheduleOptions = {
    scheduleId: RESIGN_SCHEDULE_ID,
    spec: { intervals: [{ every: `${every} seconds` }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'resignReleases',
      taskQueue: config.temporal.taskQueue,
      args: [{ targets }],
      workflowId: RESIGN_SCHEDULE_ID,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' },
  };
  try {
    await client.schedule.create(options);
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await handle.update((prev) => ({
      ...prev,
      spec: options.spec,
      action: options.action,
      policies: options.policies,
    }));
  }
  return RESIGN_SCHEDULE_ID;
}
