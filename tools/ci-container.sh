#!/usr/bin/env bash
# CI as CI runs it, on this machine: `.ci/run` in a fresh clone of REV (default HEAD) with
# CI=true and no stdin, inside a pid namespace whose process group is inside it and whose
# session lies outside it, as in the container CI runs in (the kernel names such a session 0
# there; a run outside that shape hid a test that failed in CI). Needs root (unshare --pid).
# The clone is left in the directory it prints, with its log.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "ci-container: needs root (unshare --pid)" >&2; exit 2; }
rev=${1:-HEAD}
top=$(git rev-parse --show-toplevel)
dir=$(mktemp -d /tmp/month_lock_ci.XXXXXX)
chmod 755 "$dir" # as a checkout usually is: some suites run steps as other users
git clone -q "$top" "$dir/src"
git -C "$dir/src" checkout -q "$(git -C "$top" rev-parse "$rev")"
echo "ci-container: $(git -C "$dir/src" log --oneline -1) in $dir (log: $dir/log)"
cd "$dir/src"
# `set -m` gives the job a process group of its own inside the namespace; `env
# --default-signal` undoes what a launching script ignored (its background jobs get SIGINT and
# SIGQUIT ignored, and month-lock keeps an ignored signal ignored).
CI=true env --default-signal unshare --pid --fork --mount-proc bash -c 'set -m; bash .ci/run </dev/null & wait $!' \
  </dev/null >"$dir/log" 2>&1 && status=0 || status=$?
tail -3 "$dir/log"
echo "ci-container: exit $status after $SECONDS s"
exit "$status"
