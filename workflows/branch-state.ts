// Entity workflow `branch-state/<owner>/<repo>/<branch>`: the datastore of the 2015 chain. It owns
// the build counter, the last green build and the stable release branch. Build numbers are handed
// out by an Update (a single-threaded workflow, so two concurrent pushes never get the same number;
// a pipeline asking twice gets its first number back). It runs forever and continues-as-new,
// carrying its state, before its history grows large.
import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  allocateBuildUpdate,
  branchStateQuery,
  recordGreenSignal,
  recordReleaseSignal,
  type BranchState,
} from './messages';

/** How many pipeline → build assignments are remembered (retries happen within minutes or days, not hundreds of builds). */
const REMEMBERED_ASSIGNMENTS = 200;
/** Continue-as-new well before Temporal's history limits; every update adds a handful of events. */
const MAX_HISTORY_EVENTS = 2000;

export async function branchState(initial: BranchState): Promise<void> {
  const state: BranchState = { ...initial, assigned: [...initial.assigned] };

  setHandler(branchStateQuery, () => state);
  setHandler(
    allocateBuildUpdate,
    ({ pipelineId }) => {
      const known = state.assigned.find((a) => a.pipelineId === pipelineId);
      if (known) return { build: known.build };
      state.lastBuild += 1;
      state.assigned.push({ pipelineId, build: state.lastBuild });
      if (state.assigned.length > REMEMBERED_ASSIGNMENTS)
        state.assigned.splice(0, state.assigned.length - REMEMBERED_ASSIGNMENTS);
      return { build: state.lastBuild };
    },
    {
      validator: ({ pipelineId }) => {
        if (typeof pipelineId !== 'string' || !pipelineId.startsWith('pipeline/')) {
          throw new Error(`allocateBuild needs a pipeline workflow ID, got ${JSON.stringify(pipelineId)}`);
        }
      },
    },
  );
  setHandler(recordReleaseSignal, (r) => {
    state.stableBranch = r.stableBranch;
    state.releasedVersion = r.version;
  });
  setHandler(recordGreenSignal, (green) => {
    // Out-of-order completions must not move "last green" backwards.
    if (!state.lastGreen || green.build >= state.lastGreen.build) state.lastGreen = green;
  });

  await condition(
    () =>
      workflowInfo().continueAsNewSuggested ||
      workflowInfo().historyLength > (state.maxHistoryEvents ?? MAX_HISTORY_EVENTS),
  );
  // Updates accepted before this point must finish in this run, or their callers would see them lost.
  await condition(allHandlersFinished);
  await continueAsNew<typeof branchState>(state);
}
