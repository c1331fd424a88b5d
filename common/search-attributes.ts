// Typed search attribute keys, defined once. The local stack registers them at server start
// (cli/local-stack/temporal.ts reads SEARCH_ATTRIBUTES); production clusters need
// `temporal operator search-attribute create` with the same names and types.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const RepositoryKey = defineSearchAttributeKey('ConveyorRepository', SearchAttributeType.KEYWORD);
export const BranchKey = defineSearchAttributeKey('ConveyorBranch', SearchAttributeType.KEYWORD);
export const CommitKey = defineSearchAttributeKey('ConveyorCommit', SearchAttributeType.KEYWORD);
export const StageKey = defineSearchAttributeKey('ConveyorStage', SearchAttributeType.KEYWORD);
export const StatusKey = defineSearchAttributeKey('ConveyorStatus', SearchAttributeType.KEYWORD);
export const BuildKey = defineSearchAttributeKey('ConveyorBuild', SearchAttributeType.INT);

/** name → Temporal CLI type, for `temporal server start-dev --search-attribute name=type`. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Int'> = {
  ConveyorRepository: 'Keyword',
  ConveyorBranch: 'Keyword',
  ConveyorCommit: 'Keyword',
  ConveyorStage: 'Keyword',
  ConveyorStatus: 'Keyword',
  ConveyorBuild: 'Int',
};
