// Every signal, query and update of Conveyor's workflows, beside its payload type. They work from
// `temporal workflow query --type status` as well as from `conveyor status`.
import { defineQuery } from '@temporalio/workflow';
import type { PipelineStatus } from '../common/types';

/** The run as an operator sees it: status, current stage, each stage with state, attempt, times, log keys. */
export const statusQuery = defineQuery<PipelineStatus>('status');
