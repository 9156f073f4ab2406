#!/usr/bin/env bash
# Usage: tools/callgrind-pair.sh BINDIR [N] [OUT_DIR]
#
# Instructions per uncontended call pair, month_lock against the built-in advisory functions,
# counted by callgrind in a single-user backend (`postgres --single`, no client protocol, no other
# process): each query runs N pairs in one generate_series scan, and the bare loop (the same
# scan without the calls) is subtracted, so what remains is the calls alone. Instruction counts do
# not depend on the machine's load, unlike wall-clock figures.
#
#   exclusive   month_lock_try(y, m) AND month_lock_release(y, m)
#               against pg_try_advisory_lock(ns, key) AND pg_advisory_unlock(ns, key)
#   shared      the _shared forms of both
#   xact        month_lock_try_xact(y, m) against pg_try_advisory_xact_lock(ns, key): one call per
#               row, the references stack until the statement's transaction ends
#
# The month (1 + i % 12) and the built-in's key (200001 + i % 12) cycle over twelve locks, as the
# in-server wall-clock loop of `make bench` does. BINDIR is the bin directory of a PostgreSQL
# installation with month_lock installed (a release build: `make tree-install TEST_PROFILE=release`).
# Needs valgrind; run as root (the server runs as $PG_OS_USER, default postgres) or as that user.
# OUT_DIR, if given, keeps the callgrind output files (callgrind_annotate --inclusive=yes FILE).
# Prints one line per query (total instructions) and a table: pair, month_lock, built-in, ratio.
set -euo pipefail
bin=${1:?bindir}
n=${2:-100000}
keep=${3:-}
os_user=${PG_OS_USER:-postgres}
command -v valgrind >/dev/null || { echo "callgrind-pair: valgrind is not installed" >&2; exit 1; }

dir=$(mktemp -d /tmp/month_lock_callgrind.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
as=()
if [ "$(id -u)" = 0 ]; then
  chown "$os_user" "$dir"
  as=(runuser -u "$os_user" --)
fi
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  keep=$(cd "$keep" && pwd)
  chmod 777 "$keep"
fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log"; exit 1; }
echo "CREATE EXTENSION month_lock;" | "${as[@]}" "$bin/postgres" --single -D "$dir/data" postgres \
  >"$dir/create.log" 2>&1 || { cat "$dir/create.log"; exit 1; }

ns=1835821824 # month_lock.namespace's default: the built-in pairs use the same first key
declare -A q
q[bare]="(2000 + i % 12) > 0 AND (1 + i % 12) > 0"
q[month_lock]="month_lock_try(2000, 1 + i % 12) AND month_lock_release(2000, 1 + i % 12)"
q[builtin]="pg_try_advisory_lock($ns, 200001 + i % 12) AND pg_advisory_unlock($ns, 200001 + i % 12)"
q[month_lock_shared]="month_lock_try_shared(2000, 1 + i % 12) AND month_lock_release_shared(2000, 1 + i % 12)"
q[builtin_shared]="pg_try_advisory_lock_shared($ns, 200001 + i % 12) AND pg_advisory_unlock_shared($ns, 200001 + i % 12)"
q[month_lock_xact]="month_lock_try_xact(2000, 1 + i % 12) AND (1 + i % 12) > 0"
q[builtin_xact]="pg_try_advisory_xact_lock($ns, 200001 + i % 12) AND (1 + i % 12) > 0"

declare -A total
for k in bare month_lock builtin month_lock_shared builtin_shared month_lock_xact builtin_xact; do
  # The same warm-up statements first in every run (they load the library and fill the
  # caches), then the measured query, all in one backend.
  {
    echo "SELECT month_lock_try(1999, 1); SELECT month_lock_release(1999, 1);"
    echo "SELECT pg_try_advisory_lock(1); SELECT pg_advisory_unlock(1);"
    echo "SELECT count(*) FROM generate_series(1, $n) i WHERE ${q[$k]};"
  } >"$dir/$k.sql"
  out=/dev/null
  [ -n "$keep" ] && out=$keep/callgrind.$k
  total[$k]=$("${as[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin/postgres" --single -D "$dir/data" postgres <"$dir/$k.sql" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  [ -n "${total[$k]}" ] || { echo "callgrind-pair: no count for $k" >&2; exit 1; }
  echo "$k ${total[$k]}"
done

per_pair() { echo $(( (total[$1] - total[bare]) / n )); }
printf '%-10s %10s %10s %7s\n' pair month_lock built-in ratio
for p in exclusive shared xact; do
  case $p in
    exclusive) m=month_lock b=builtin ;;
    *) m=month_lock_$p b=builtin_$p ;;
  esac
  a=$(per_pair $m)
  c=$(per_pair $b)
  printf '%-10s %10s %10s %7s\n' $p "$a" "$c" "$(awk -v a="$a" -v c="$c" 'BEGIN { printf "%.2fx", a / c }')"
done
