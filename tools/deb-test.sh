#!/usr/bin/env bash
# Usage: tools/deb-test.sh DIST_DIR AGAIN_DIR OLD_STAGE_DIR          (as root; make deb-test)
#
# The Debian packages on this machine's Debian PostgreSQL 15 (/usr/lib/postgresql/15), with
# apt-get, as a user installs them:
#   1. lintian on the packages in DIST_DIR (warnings and errors fail; overrides state reasons);
#      the extension's Depends names postgresql-15; a second `make deb` into AGAIN_DIR gave
#      byte-identical packages (reproducible);
#   2. an older package, 0.1.0-1, is installed: a different build of the library (OLD_STAGE_DIR,
#      the debug build) with the released 0.1.0 script as default_version, as a 0.1.0 package
#      had; on a throwaway cluster from /usr/lib/postgresql/15/bin, CREATE EXTENSION month_lock
#      gives 0.1.0 and a session loads the library and holds a month; the command's package is
#      installed too (`month-lock --version` is the client crate's version, its man page);
#   3. the current package is installed over it with apt-get while that session stays
#      connected (tools/deb-check.sh): the session keeps working, ALTER EXTENSION month_lock
#      UPDATE, the SQL check as an ordinary role, the month-lock command, the pg_regress and
#      isolation suites, and the upgrade check of tools/upgrade-check.sh;
#   4. apt-get remove, then install + apt-get purge, of both packages: no file they listed is
#      left;
#   5. the RUN step of packaging/docker/Dockerfile runs here with PG_MAJOR=15 (the image's
#      apt-get install of the package) and the Dockerfiles' static checks pass.
# Whatever happens, both packages are purged at the end. Runs hold /run/lock/month_lock-deb-test
# so that two checkouts never install into the system PostgreSQL at once.
set -euo pipefail
dist=${1:?dist dir}
again=${2:?dir of a second build}
old_stage=${3:?old stage dir}
root=$(cd "$(dirname "$0")/.." && pwd)
dist=$(cd "$dist" && pwd)
pg_config=/usr/lib/postgresql/15/bin/pg_config
ext_pkg=postgresql-15-month-lock
cli_pkg=month-lock
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
fail() { echo "deb-test: FAILED: $*"; exit 1; }
step() { echo "deb-test: $*"; }
passed=0
ok() { passed=$((passed + 1)); echo "deb-test: ok - $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (apt-get install into the system)"
for t in apt-get dpkg lintian flock "$pg_config"; do
  command -v "$t" >/dev/null || fail "$t missing"
done
arch=$(dpkg --print-architecture)
# Each package carries its own version: the extension's and the command's (client/Cargo.toml).
version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
cli_version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog.cli" -S Version)
new_deb=$dist/${ext_pkg}_${version}_$arch.deb
cli_deb=$dist/${cli_pkg}_${cli_version}_$arch.deb
[ -f "$new_deb" ] || fail "$new_deb missing (make deb PACKAGE_PGS=15)"
[ -f "$cli_deb" ] || fail "$cli_deb missing (make deb)"
work=$(mktemp -d /tmp/month_lock_deb_test.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
# Interrupted or killed: still run the EXIT trap (which purges the packages once installed).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

## 1. lintian, reproducibility ---------------------------------------------------------------
# As an unprivileged user (lintian unpacks what it checks), on copies it can read. Overridden tags
# are shown with their reasons; any other warning or error fails.
mkdir -p "$work/lintian"
cp "$new_deb" "$cli_deb" "$work/lintian/"
chmod -R a+rX "$work/lintian"
step "lintian $(lintian --version | sed 's/^Lintian v//') (overrides shown with their reasons):"
# From that directory: the checkout may be one nobody cannot enter (a clone under a 0700 mktemp).
(cd "$work/lintian" && runuser -u nobody -- lintian --fail-on none --show-overrides ./*.deb) \
  >"$work/lintian.out" 2>&1 || { cat "$work/lintian.out"; fail "lintian did not run"; }
sed 's/^/  /' "$work/lintian.out"
! grep -q '^[EW]: ' "$work/lintian.out" || fail "lintian: errors or warnings (above)"
ok "lintian: no error or warning on $(basename "$new_deb") and $(basename "$cli_deb")"

depends=$(dpkg-deb -f "$new_deb" Depends)
[[ "$depends" == "postgresql-15, libc6 (>= "* ]] || fail "$(basename "$new_deb"): Depends: $depends"
ok "$(basename "$new_deb"): Depends: $depends; $(basename "$cli_deb"): Depends: $(dpkg-deb -f "$cli_deb" Depends)"

# A second `make deb` of the same sources (the build itself cached by cargo): the same bytes.
for deb in "$new_deb" "$cli_deb"; do
  cmp "$deb" "$again/$(basename "$deb")" || fail "a second make deb gave a different $(basename "$deb")"
done
ok "reproducible: a second make deb gives byte-identical packages"

## the older package: the released 0.1.0 script as default, a different build of the library --
fixture=$work/old-stage
mkdir -p "$fixture/lib" "$fixture/extension"
cp "$old_stage/lib/month_lock.so" "$fixture/lib/"
cp "$root/sql/month_lock--0.1.0.sql" "$fixture/extension/"
sed "s/^default_version = .*/default_version = '0.1.0'/" "$old_stage/extension/month_lock.control" \
  >"$fixture/extension/month_lock.control"
old_deb=$(DEB_VERSION=0.1.0-1 "$root/tools/deb.sh" extension-stage "$fixture" 15 "$work/old" 2>"$work/old.log") \
  || { cat "$work/old.log"; fail "building the 0.1.0-1 package"; }
cmp -s <(dpkg-deb --fsys-tarfile "$old_deb" | tar -xO ./usr/lib/postgresql/15/lib/month_lock.so) \
  <(dpkg-deb --fsys-tarfile "$new_deb" | tar -xO ./usr/lib/postgresql/15/lib/month_lock.so) \
  && fail "the 0.1.0-1 package has the same library as $version; the upgrade test needs another build"
step "older package $(basename "$old_deb"): $(dpkg-deb -c "$old_deb" | grep -c '\.sql$') SQL script(s), default_version 0.1.0"

## the system: one run at a time, nothing of ours left behind -------------------------------
exec 9>/run/lock/month_lock-deb-test
flock -w 900 9 || fail "another deb-test holds /run/lock/month_lock-deb-test"
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
known() { dpkg-query -W "$1" >/dev/null 2>&1 && [ "$(dpkg-query -W -f='${db:Status-Status}' "$1")" != not-installed ]; }
purge_all() {
  local p
  for p in "$ext_pkg" "$cli_pkg"; do
    if known "$p"; then "${apt[@]}" purge "$p" >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; return 1; }; fi
  done
}
cleanup() {
  status=$?
  purge_all || { echo "deb-test: could not purge the packages"; status=1; }
  for p in "$ext_pkg" "$cli_pkg"; do
    ! known "$p" || { echo "deb-test: $p is still known to dpkg"; status=1; }
  done
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
purge_all || fail "could not purge leftovers of an earlier run"
# Files of ours that no package owns (make install into the system) are somebody's; refuse.
for f in /usr/lib/postgresql/15/lib/month_lock.so /usr/share/postgresql/15/extension/month_lock.control /usr/bin/month-lock; do
  if [ -e "$f" ] && ! dpkg -S "$f" >/dev/null 2>&1; then
    fail "$f exists and belongs to no package (installed by hand?); not overwriting it"
  fi
done

## 2.-3. install the older package, upgrade under a loaded session, checks ------------------
"${apt[@]}" install "$old_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install $old_deb"; }
installed "$ext_pkg" && [ "$(dpkg-query -W -f='${Version}' "$ext_pkg")" = 0.1.0-1 ] || fail "0.1.0-1 not installed"
ok "apt-get install $(basename "$old_deb")"
"${apt[@]}" install "$cli_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install $cli_deb"; }
installed "$cli_pkg" || fail "$cli_pkg not installed"
ok "apt-get install $(basename "$cli_deb")"
[ "$(command -v month-lock)" = /usr/bin/month-lock ] || fail "month-lock is not /usr/bin/month-lock"
[ "$(month-lock --version)" = "month-lock ${cli_version%-*}" ] || fail "month-lock --version says '$(month-lock --version)'"
ok "month-lock --version: $(month-lock --version)"
[ -f /usr/share/man/man1/month-lock.1.gz ] && zcat /usr/share/man/man1/month-lock.1.gz | grep -q '^\.SS "month-lock check"' \
  || fail "the man page is missing or lacks the commands"
ok "man page /usr/share/man/man1/month-lock.1.gz with every command"

DEB_TEST_OK=$work/checks.ok "$root/tools/with-cluster.sh" "$pg_config" \
  "$root/tools/deb-check.sh" "$pg_config" "$new_deb" "$version" \
  || fail "the checks on the cluster (above)"
passed=$((passed + $(cat "$work/checks.ok")))

## 4. remove and purge leave nothing ----------------------------------------------------------
# dpkg -L lists the package's files and directories; directories shared with other packages
# (usr/lib/postgresql/15/lib, ...) stay, every file and every directory only this package has goes.
owned_paths() { # package
  dpkg -L "$1" | while read -r p; do
    if [ "$p" = /. ]; then
      continue
    elif [ -d "$p" ] && [ ! -L "$p" ]; then
      dpkg -S "$p" 2>/dev/null | grep -q ',' || echo "$p"   # only this package owns the directory
    else
      echo "$p"
    fi
  done
}
left_after() { # action package -> no path of it left
  local action=$1 p=$2 paths left
  paths=$(owned_paths "$p")
  [ -n "$paths" ] || fail "dpkg -L $p lists nothing"
  "${apt[@]}" "$action" "$p" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get $action $p"; }
  left=$(while read -r f; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done <<<"$paths" || true)
  [ -z "$left" ] || fail "apt-get $action $p left: $left"
  ok "apt-get $action $p: none of its $(grep -c '' <<<"$paths") paths left, dpkg status: $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || echo 'no longer known')"
}
left_after remove "$ext_pkg"
left_after remove "$cli_pkg"
"${apt[@]}" install "$new_deb" "$cli_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install (again)"; }
left_after purge "$ext_pkg"
left_after purge "$cli_pkg"
for p in "$ext_pkg" "$cli_pkg"; do
  known "$p" && fail "$p still known to dpkg after purge"
done
ok "after purge dpkg knows neither package"

## 5. the Dockerfiles -------------------------------------------------------------------------
"$root/tools/docker-check.py" "$dist" 15 "${DEB_PGS:-14 15 16 17 18}" | tee "$work/docker.log" \
  || fail "Dockerfile checks"
passed=$((passed + $(grep -c '^docker-check: ok - ' "$work/docker.log")))
purge_all || fail "purge after the Dockerfile's install"

echo "deb-test: $passed passed, 0 failed"
