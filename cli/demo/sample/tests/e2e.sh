#!/bin/sh
# End-to-end test: the README's examples against the installed widget (the one on PATH, never
# ./bin/widget), e.g. on a staging host after an upgrade, when a pipeline's e2e step is a command
# (`make e2e`). The same blocks run as Conveyor's built-in `e2e: { examples: [README.md] }` kind
# (conveyor.dev.yml): a fenced block marked `conveyor-example`, `$ command` lines followed by their
# expected output, a last `[N]` line for a non-zero exit code. This script checks the exit code of
# every command and its output when the expected lines hold no `...` wildcard.
set -eu
widget=$(command -v widget) || { echo "e2e: widget is not installed (not on PATH)"; exit 1; }
case "$widget" in "$(pwd)"/*) echo "e2e: $widget is the checkout's, not an installed one"; exit 1;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
count=0
check() { # runs the command in $tmp/cmd and compares with $tmp/want
  [ -s "$tmp/cmd" ] || return 0
  count=$((count + 1))
  cmd=$(cat "$tmp/cmd")
  want_code=0
  last=$(tail -n 1 "$tmp/want")
  case "$last" in '['*']')
    want_code=${last#[}; want_code=${want_code%]}
    sed '$d' "$tmp/want" > "$tmp/want.1" && mv "$tmp/want.1" "$tmp/want" ;;
  esac
  code=0
  sh -c "$cmd" > "$tmp/got" 2>&1 || code=$?
  if [ "$code" -ne "$want_code" ]; then
    echo "e2e: FAIL: \$ $cmd exited $code, expected $want_code:"; sed 's/^/  /' "$tmp/got"; failures=$((failures + 1))
  elif [ -s "$tmp/want" ] && ! grep -qF '...' "$tmp/want" && ! cmp -s "$tmp/want" "$tmp/got"; then
    echo "e2e: FAIL: \$ $cmd printed:"; sed 's/^/  /' "$tmp/got"; echo "  expected:"; sed 's/^/  /' "$tmp/want"
    failures=$((failures + 1))
  else
    echo "e2e: ok: \$ $cmd"
  fi
  : > "$tmp/cmd"; : > "$tmp/want"
}
: > "$tmp/cmd"; : > "$tmp/want"
# The lines of the marked blocks only.
awk '/^```/ { if (inside) { inside = 0; next } if ($0 ~ /conveyor-example/) { inside = 1; next } } inside' \
  README.md > "$tmp/examples"
while IFS= read -r line; do
  case "$line" in
    '$ '*) check; printf '%s' "${line#\$ }" > "$tmp/cmd" ;;
    *) printf '%s\n' "$line" >> "$tmp/want" ;;
  esac
done < "$tmp/examples"
check

# The installed version is the one this pipeline built (when told which).
if [ -n "${CONVEYOR_VERSION:-}" ]; then
  got=$(widget --version)
  if [ "$got" = "widget $CONVEYOR_VERSION" ]; then echo "e2e: ok: version $CONVEYOR_VERSION"
  else echo "e2e: FAIL: widget --version printed '$got', expected 'widget $CONVEYOR_VERSION'"; failures=$((failures + 1)); fi
fi
[ "$count" -gt 0 ] || { echo "e2e: no examples found in README.md"; exit 1; }
[ "$failures" -eq 0 ] || { echo "e2e: $failures failed"; exit 1; }
echo "e2e: all $count examples passed with $widget"
