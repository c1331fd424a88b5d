#!/bin/sh
# Unit tests of widget; CONVEYOR_FAIL_UNIT=1 in the environment makes them fail on purpose.
set -eu
[ "$(./bin/widget add 2 3)" = 5 ] || { echo "add 2 3 is not 5"; exit 1; }
[ "$(./bin/widget add -1 1)" = 0 ] || { echo "add -1 1 is not 0"; exit 1; }
if [ -f FAIL_UNIT ]; then echo "unit: failing on purpose (FAIL_UNIT present)"; exit 3; fi
echo "unit: ok at ${CONVEYOR_COMMIT:-unknown}"
