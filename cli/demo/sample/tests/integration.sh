#!/bin/sh
# Integration test: the program as a user runs it.
set -eu
out=$(./bin/widget --version)
[ "$out" = "widget $(cat VERSION)" ] || { echo "unexpected version output: $out"; exit 1; }
if ./bin/widget bogus 2>/dev/null; then echo "bogus command accepted"; exit 1; fi
echo "integration: ok at ${CONVEYOR_COMMIT:-unknown} on ${CONVEYOR_DISTRO:-unknown}"
