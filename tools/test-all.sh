#!/usr/bin/env bash
# Usage: tools/test-all.sh LOG_DIR MAJOR...        (make test-all)
#
# Runs `make test PG=MAJOR` for each major, one after the other, each with its output in
# LOG_DIR/test-pgMAJOR.log, and ends with one line per major: green or failed (make's exit
# status), the time it took and its log. Nothing is read out of the logs: a failure's details
# are in the log, where each suite starts with "=== month_lock suite: NAME". Exits non-zero if
# any major failed.
set -uo pipefail
logs=${1:?log dir}
shift
make=${MAKE:-make}  # MAKE: another make program (to try the script out)
mkdir -p "$logs"
declare -A status secs
for v in "$@"; do
  log=$logs/test-pg$v.log
  echo "=== make test PG=$v (log: $log) ==="
  start=$(date +%s)
  "$make" --no-print-directory test PG="$v" >"$log" 2>&1 </dev/null
  status[$v]=$?
  secs[$v]=$(( $(date +%s) - start ))
  echo "PostgreSQL $v: $([ "${status[$v]}" = 0 ] && echo green || echo "FAILED (exit ${status[$v]})") after ${secs[$v]}s"
done
echo
printf '%-12s %-20s %-8s %s\n' PostgreSQL result time log
overall=0
for v in "$@"; do
  if [ "${status[$v]}" = 0 ]; then r=green; else r="FAILED (exit ${status[$v]})"; overall=1; fi
  printf '%-12s %-20s %-8s %s\n' "$v" "$r" "${secs[$v]}s" "$logs/test-pg$v.log"
done
exit $overall
