// conveyor-host-exec [-n] HOST COMMAND [ARG...]: the program an e2e step calls (as
// $CONVEYOR_HOST_EXEC) to run COMMAND on a staging host of its run. It holds nothing: it reads its
// stdin (up to 256 KiB; -n: none), sends one JSON line {host, argv, stdin} to the unix socket
// beside it (or $CONVEYOR_HOST_EXEC_SOCKET), and prints the answer: the command's stdout and
// stderr, then exits with its exit code. Refusals (a host not of this run, a malformed request)
// exit 2, transport failures 255, each with a `conveyor-host-exec:` line on stderr.
//
// Plain Node without dependencies, run by the worker's own node binary: it must work in a step
// sandbox that sees only /usr, /etc and the directory it was copied into (activities/fleet/e2e.ts).
'use strict';
const net = require('net');
const path = require('path');

const STDIN_MAX = 256 * 1024; // common/host-exec.ts HostExecLimits.stdinBytes
const ANSWER_MAX = 4 * 1024 * 1024;
const USAGE = 'usage: conveyor-host-exec [-n] HOST COMMAND [ARG...]   (hosts: $CONVEYOR_HOSTS)';

function say(line) {
  process.stderr.write(`conveyor-host-exec: ${line}\n`);
}

/** All of stdin, or null when it is larger than `max`. */
function readStdin(max) {
  return new Promise((resolve, reject) => {
    if (process.stdin.isTTY) return resolve(Buffer.alloc(0));
    const parts = [];
    let size = 0;
    process.stdin.on('data', (chunk) => {
      size += chunk.length;
      if (size > max) {
        process.stdin.destroy();
        resolve(null);
        return;
      }
      parts.push(chunk);
    });
    process.stdin.on('end', () => resolve(Buffer.concat(parts)));
    process.stdin.on('error', reject);
  });
}

function ask(socketPath, request) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let size = 0;
    // A unix socket path holds at most 107 bytes (longer ones are cut): connect relative to it.
    process.chdir(path.dirname(socketPath));
    const sock = net.createConnection(path.basename(socketPath));
    sock.on('connect', () => sock.write(`${JSON.stringify(request)}\n`));
    sock.on('data', (chunk) => {
      size += chunk.length;
      if (size > ANSWER_MAX) sock.destroy(new Error('the answer is too large'));
      else parts.push(chunk);
    });
    sock.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch {
        reject(new Error('the relay sent no answer (did the e2e step outlive its relay?)'));
      }
    });
    sock.on('error', reject);
  });
}

function write(stream, base64) {
  return new Promise((resolve) => {
    if (!base64) return resolve();
    stream.write(Buffer.from(base64, 'base64'), () => resolve());
  });
}

async function main() {
  let args = process.argv.slice(2);
  let withStdin = true;
  if (args[0] === '-n') {
    withStdin = false;
    args = args.slice(1);
  }
  if (args.length < 2) {
    say(USAGE);
    return 2;
  }
  const [host, ...argv] = args;
  const stdin = withStdin ? await readStdin(STDIN_MAX) : Buffer.alloc(0);
  if (stdin === null) {
    say(`stdin is larger than ${STDIN_MAX / 1024} KiB: copy larger inputs in smaller pieces, or use -n`);
    return 2;
  }
  const socketPath = process.env.CONVEYOR_HOST_EXEC_SOCKET || path.join(__dirname, 'host-exec.sock');
  let answer;
  try {
    answer = await ask(socketPath, { host, argv, ...(stdin.length > 0 ? { stdin: stdin.toString('base64') } : {}) });
  } catch (err) {
    say(`cannot reach the host-exec relay at ${socketPath}: ${err.message}`);
    return 255;
  }
  if (typeof answer.error === 'string') {
    say(answer.error);
    return typeof answer.exitCode === 'number' ? answer.exitCode : 255;
  }
  await write(process.stdout, answer.stdout);
  await write(process.stderr, answer.stderr);
  if (answer.stdoutTruncated) say('stdout was cut at 256 KiB');
  if (answer.stderrTruncated) say('stderr was cut at 256 KiB');
  if (answer.timedOut) say(`${argv[0]} on ${host} ran out of time`);
  return typeof answer.exitCode === 'number' ? answer.exitCode : 255;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    say(err && err.message ? err.message : String(err));
    process.exitCode = 255;
  },
);
