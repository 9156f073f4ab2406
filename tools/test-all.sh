#!/usr/bin/env bash
# Usage: tools/test-all.sh LOG_DIR MAJOR...
#
# Runs `make test PG=MAJOR` for each major (logs in LOG_DIR/test-pgMAJOR.log), then prints a
# table major x suite with the number of tests passed (and failed) per suite, read from the
# runners' own summary lines. Exits non-zero if any major failed.
set -uo pipefail
logs=${1:?log dir}
shift
mkdir -p "$logs"
suites="pgrx regress itest client"
declare -A result status
for v in "$@"; do
  log=$logs/test-pg$v.log
  echo "=== make test PG=$v (log: $log) ==="
  start=$(date +%s)
  make --no-print-directory test PG="$v" >"$log" 2>&1 </dev/null
  status[$v]=$?
  secs=$(( $(date +%s) - start ))
  tail -n 3 "$log"
  # Count per suite section (the Makefile prints "=== month_lock suite: NAME ... ===").
  eval "$(awk -v v="$v" '
    /^=== month_lock suite: / { suite = $4; next }
    suite != "" && /^test result: / {
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p[suite] += $i
        if ($(i+1) ~ /^failed/) f[suite] += $i
      }
    }
    suite == "regress" && /(All|all) [0-9]+ tests passed/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) { p[suite] += $i; break }
    }
    suite == "regress" && /[0-9]+ of [0-9]+ tests failed/ {
      for (i = 1; i <= NF; i++) if ($i == "of") { f[suite] += $(i-1); p[suite] += $(i+1) - $(i-1); break }
    }
    suite == "regress" && /^[a-z-]+: [0-9]+ passed, [0-9]+ failed$/ { xp[suite] += $2; xf[suite] += $4 }
    suite == "regress" && /^ok [0-9]+ /  { tap_p[suite]++ }
    suite == "regress" && /^not ok [0-9]+ / { tap_f[suite]++ }
    END {
      for (s in p) printf "P_%s=%d\n", s, p[s]
      for (s in f) printf "F_%s=%d\n", s, f[s]
      for (s in tap_p) printf "TP_%s=%d\n", s, tap_p[s]
      for (s in tap_f) printf "TF_%s=%d\n", s, tap_f[s]
      for (s in xp) printf "XP_%s=%d\nXF_%s=%d\n", s, xp[s], s, xf[s]
    }' "$log")"
  for s in $suites; do
    pass=$(eval echo "\${P_$s:-}"); fail=$(eval echo "\${F_$s:-0}")
    tp=$(eval echo "\${TP_$s:-}"); tf=$(eval echo "\${TF_$s:-0}")
    # pg_regress 16+ prints TAP lines; 14/15 print "All N tests passed".
    if [ -n "$tp" ] && [ -z "$pass" ]; then pass=$tp; fail=$tf; fi
    # upgrade-check.sh and install-while-loaded.sh: "NAME: N passed, M failed".
    xp=$(eval echo "\${XP_$s:-}"); xf=$(eval echo "\${XF_$s:-0}")
    if [ -n "$xp" ]; then pass=$(( ${pass:-0} + xp )); fail=$(( fail + xf )); fi
    if [ -z "$pass" ]; then cell="-"; else cell="$pass"; [ "$fail" != 0 ] && cell="$cell ($fail failed)"; fi
    result[$v,$s]=$cell
    unset "P_$s" "F_$s" "TP_$s" "TF_$s" "XP_$s" "XF_$s"
  done
  result[$v,time]="${secs}s"
done
echo
printf '%-12s' "PostgreSQL"; for s in $suites; do printf '%-16s' "$s"; done; printf '%-8s%s\n' time result
overall=0
for v in "$@"; do
  printf '%-12s' "$v"
  for s in $suites; do printf '%-16s' "${result[$v,$s]}"; done
  if [ "${status[$v]}" = 0 ]; then r=green; else r="FAILED (exit ${status[$v]})"; overall=1; fi
  printf '%-8s%s\n' "${result[$v,time]}" "$r"
done
exit $overall
