#!/bin/sh
# End-to-end test: the README's examples against the installed widget (the one on PATH, never
# ./bin/widget), e.g. on a staging host after an upgrade. An example is a `$ command` line,
# indented four spaces, followed by its expected output lines, if any.
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
  if ! sh -c "$cmd" > "$tmp/got" 2>&1; then
    echo "e2e: FAIL: \$ $cmd exited non-zero:"; sed 's/^/  /' "$tmp/got"; failures=$((failures + 1))
  elif [ -s "$tmp/want" ] && ! cmp -s "$tmp/want" "$tmp/got"; then
    echo "e2e: FAIL: \$ $cmd printed:"; sed 's/^/  /' "$tmp/got"; echo "  expected:"; sed 's/^/  /' "$tmp/want"
    failures=$((failures + 1))
  else
    echo "e2e: ok: \$ $cmd"
  fi
  : > "$tmp/cmd"; : > "$tmp/want"
}
: > "$tmp/cmd"; : > "$tmp/want"
sed -n 's/^    //p' README.md > "$tmp/examples"
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
