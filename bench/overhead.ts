import type { Benchmark } from './harness';
export const overhead: Benchmark = { name: 'overhead', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
