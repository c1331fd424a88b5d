import type { Benchmark } from './harness';
export const publish: Benchmark = { name: 'publish', describe: 'todo', run: () => Promise.reject(new Error('not yet')) };
