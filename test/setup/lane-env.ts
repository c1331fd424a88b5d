// Before every test file, in its worker process: the stack of this worker's band lane. The global
// setup starts one stack per band lane (CONVEYOR_TEST_BAND) and names stack N's addresses
// CONVEYOR_TEST_TEMPORAL_N and CONVEYOR_TEST_AWS_N; jest numbers the worker processes of each lane
// from 1 (JEST_WORKER_ID), so band worker N uses stack N for every file it runs, and files on one
// stack never overlap. Pool workers (unit, workflow, replay files) share stack 1; they use names
// of their own. Child processes a test starts inherit the chosen addresses with its environment.
const worker = process.env.JEST_WORKER_ID;
if (worker && worker !== '1') {
  for (const name of ['CONVEYOR_TEST_TEMPORAL', 'CONVEYOR_TEST_AWS']) {
    const own = process.env[`${name}_${worker}`];
    if (own) process.env[name] = own;
  }
}
