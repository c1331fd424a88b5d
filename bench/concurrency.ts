import type { Benchmark } from './harness';
export const concurrency: Benchmark = { name: 'concurrency', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
