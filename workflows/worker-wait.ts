// "Waiting for a build-<distro> worker": a step activity sits on its build queue until a builder
// takes it, and nothing in the history says so: with no builder for the distro the run looked
// silently "running" forever. Builders signal `stepStarted` to the stage workflow when they pick a
// step up (activities/exec/run-step.ts); a stage that has not heard so within the repository's
// `workerWaitNoticeSeconds` says what it waits for, in the Web UI (current details) and, through its
// pipeline, in `conveyor status` and `/runs`, and clears it once a builder has started. Runs recorded
// before this (patch `worker-wait-notice`) keep their command sequence.
import { condition, defineSignal, patched, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { MessageNames } from '../common/message-names';
import { tellParent } from './support';

export const stepStartedSignal = defineSignal<[{ step: string }]>(MessageNames.stepStarted);

/** Call once per stage workflow, before scheduling its build activities. */
export function workerWaitNotice(queue: string, seconds: number | undefined) {
  let started = false;
  setHandler(stepStartedSignal, () => void (started = true));
  return async function watched<T>(run: Promise<T>): Promise<T> {
    if (!seconds || !patched('worker-wait-notice')) return run;
    let done = false;
    const settled = run.finally(() => void (done = true));
    const notice = (async () => {
      if (await condition(() => done || started, `${seconds} seconds`)) return;
      const text = `waiting for a ${queue} worker: none has taken the step for ${seconds} s (see conveyor workers)`;
      setCurrentDetails(text);
      await tellParent(text);
      await condition(() => done || started);
      setCurrentDetails('');
      await tellParent(undefined);
    })();
    try {
      return await settled;
    } finally {
      await notice;
    }
  };
}
