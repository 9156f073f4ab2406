#!/usr/bin/env bash
# Usage: tools/deb.sh extension PG_CONFIG OUT_DIR      build (release) for PG_CONFIG's major, package
#        tools/deb.sh extension-stage STAGE_DIR MAJOR OUT_DIR   package files tools/stage.sh laid out
#        tools/deb.sh cli OUT_DIR                      build the month-lock command (release), package
#
# Debian binary packages, laid out like Debian's own postgresql-NN-* extension packages:
#   postgresql-NN-month-lock_VERSION_ARCH.deb  usr/lib/postgresql/NN/lib/month_lock.so,
#                                              usr/share/postgresql/NN/extension/month_lock*
#   month-lock_CLI_VERSION_ARCH.deb            usr/bin/month-lock, its man page (help2man)
# each with usr/share/doc/PACKAGE/{copyright,changelog.Debian.gz,changelog.gz}.
# Each package has its own version, the top entry of its Debian changelog, whose upstream part
# must be its crate's version: packaging/debian/changelog and extension/Cargo.toml for the
# extension's, packaging/debian/changelog.cli and client/Cargo.toml for the command's
# (DEB_VERSION overrides it, for test fixtures only).
#
# Built with dpkg-deb from a staged tree rather than dpkg-buildpackage: the libraries for 14, 16,
# 17 and 18 are built against private trees (PyPI wheels), not against postgresql-server-dev-NN
# packages that a debian/rules and its Build-Depends would name, and `make deb` builds a subset
# of majors (PACKAGE_PGS). Reproducible: owner root:root, every mtime SOURCE_DATE_EPOCH (see
# below; dpkg-deb sorts the members and uses it for the archive's own timestamps), permissions
# set here, gzip -n, xz on one thread (multi-threaded xz output depends on the thread count).
# The binaries themselves hold the paths of CARGO_TARGET_DIR (pgrx's generated bindings) and of
# the crates' sources under CARGO_HOME in panic messages, not the clone's path: identical bytes
# need the same toolchain, Cargo.lock and those two paths. (--remap-path-prefix would lift that,
# but rustflags of ours beside cargo-pgrx's made cargo rebuild the library on every run.)
# Depends from dpkg-shlibdeps. Binaries stripped as dh_strip does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg_dir=$root/packaging/debian
cargo=${CARGO:-cargo}
mode=${1:?usage: deb.sh extension PG_CONFIG OUT_DIR | extension-stage STAGE MAJOR OUT_DIR | cli OUT_DIR}
shift

for tool in dpkg-deb dpkg-shlibdeps dpkg-parsechangelog strip; do
  command -v "$tool" >/dev/null || { echo "deb.sh: $tool missing (apt-get install dpkg-dev binutils)"; exit 1; }
done

# The package's Debian changelog, its crate and its upstream changelog.
if [ "$mode" = cli ]; then
  changelog=$pkg_dir/changelog.cli crate=client upstream_changelog=$root/client/CHANGELOG.md
else
  changelog=$pkg_dir/changelog crate=extension upstream_changelog=$root/CHANGELOG.md
fi
crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/$crate/Cargo.toml" | head -1)
deb_version=${DEB_VERSION:-$(dpkg-parsechangelog -l "$changelog" -S Version)}
if [ -z "${DEB_VERSION:-}" ] && [ "${deb_version%-*}" != "$crate_version" ]; then
  echo "deb.sh: packaging/debian/$(basename "$changelog") is at $deb_version, $crate/Cargo.toml at $crate_version: add a changelog entry"
  exit 1
fi
# Debian's convention (dpkg-buildpackage does the same): the time of the changelog's top entry.
# Unlike the last commit's time it is there without .git too (a tarball, a Docker build context).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$changelog" -S Timestamp)}
arch=$(dpkg --print-architecture)
export LC_ALL=C TZ=UTC

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The crates linked into a binary, one "name version license" a line (for the copyright file).
crates() { # cargo tree arguments
  (cd "$root" && "$cargo" tree --locked -e normal,no-proc-macro --prefix none --format '{p} {l}' "$@") \
    | sed -e 's/ (\*)$//' -e 's| (/[^)]*)||' | sort -u
}

# usr/share/doc/PACKAGE: copyright (MIT from LICENSE, the linked crates), changelogs.
write_doc() { # dest_root package crates_file
  local doc=$1/usr/share/doc/$2
  mkdir -p "$doc"
  awk -v crates="$3" -v license="$root/LICENSE" '
    function indented(file,   line, first) {
      first = 1
      while ((getline line < file) > 0) {
        if (first && line ~ /^MIT License$/) { first = 0; continue }  # the name is on the License line
        first = 0
        if (line == "") { blank = blank " .\n"; continue }
        if (started) printf "%s", blank
        blank = ""; started = 1
        print " " line
      }
      close(file); started = 0; blank = ""
    }
    /^@CRATES@$/ { while ((getline l < crates) > 0) print " " l; next }
    /^@LICENSE@$/ { indented(license); next }
    { print }' "$pkg_dir/copyright.in" >"$doc/copyright"
  gzip -9nc "$changelog" >"$doc/changelog.Debian.gz"
  gzip -9nc "$upstream_changelog" >"$doc/changelog.gz"
}

# usr/share/lintian/overrides/PACKAGE from a template (each tag with its reason), if there is one.
overrides() { # dest_root package template
  [ -f "$3" ] || return 0
  mkdir -p "$1/usr/share/lintian/overrides"
  sed "s/@PACKAGE@/$2/g" "$3" >"$1/usr/share/lintian/overrides/$2"
}

# Depends from the libraries the ELF files link (dpkg-shlibdeps wants a debian/control to exist).
shlibs() { # elf files...
  mkdir -p "$work/shlibs/debian"
  printf 'Source: month-lock\n\nPackage: month-lock\nArchitecture: any\n' >"$work/shlibs/debian/control"
  (cd "$work/shlibs" && dpkg-shlibdeps -O --warnings=0 "$@" 2>"$work/shlibs.log") \
    | sed -n 's/^shlibs:Depends=//p' || { cat "$work/shlibs.log" >&2; return 1; }
}

# Fill a control template, normalize the tree, write md5sums, build OUT/NAME.deb.
build_deb() { # dest_root template out_dir name shlibs major
  local dest=$1 template=$2 out=$3 name=$4 deps=$5 major=${6:-}
  [ -n "$deps" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies"; exit 1; }
  find "$dest" -type d -exec chmod 0755 {} +
  find "$dest" -type f -exec chmod 0644 {} +
  [ -d "$dest/usr/bin" ] && chmod 0755 "$dest"/usr/bin/*
  mkdir -p "$dest/DEBIAN"
  chmod 0755 "$dest/DEBIAN" # whatever the umask: dpkg-deb requires 0755..0775
  (cd "$dest" && find . -type f ! -path './DEBIAN/*' | sed 's|^\./||' | sort | xargs md5sum) >"$dest/DEBIAN/md5sums"
  local size
  size=$(du -sk --apparent-size --exclude=DEBIAN "$dest" | cut -f1)
  sed -e "s/@PG@/$major/g" -e "s/@DEB_VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$size/" -e "s/@SHLIBS@/$deps/" "$template" >"$dest/DEBIAN/control"
  chmod 0644 "$dest/DEBIAN/control" "$dest/DEBIAN/md5sums"
  find "$dest" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  mkdir -p "$out"
  dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$dest" "$out/$name" >/dev/null
  echo "$out/$name"
}

package_extension() { # stage_dir major out_dir
  local stage=$1 major=$2 out=$3 pkg=postgresql-$2-month-lock
  local dest=$work/$pkg
  rm -rf "$dest"
  mkdir -p "$dest/usr/lib/postgresql/$major/lib" "$dest/usr/share/postgresql/$major/extension"
  cp "$stage/lib/month_lock.so" "$dest/usr/lib/postgresql/$major/lib/"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$dest/usr/lib/postgresql/$major/lib/month_lock.so"
  cp "$stage"/extension/month_lock.control "$stage"/extension/month_lock--*.sql \
    "$dest/usr/share/postgresql/$major/extension/"
  crates -p month_lock --no-default-features --features "pg$major" >"$work/crates"
  write_doc "$dest" "$pkg" "$work/crates"
  overrides "$dest" "$pkg" "$pkg_dir/lintian-overrides.extension"
  build_deb "$dest" "$pkg_dir/control.extension.in" "$out" "${pkg}_${deb_version}_$arch.deb" \
    "$(shlibs "$dest/usr/lib/postgresql/$major/lib/month_lock.so")" "$major"
}

case "$mode" in
  extension)
    pg_config=${1:?pg_config}
    out=${2:?out dir}
    major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    if [ -z "${PGRX_HOME:-}" ]; then
      # cargo-pgrx only needs to know this one pg_config (as `make install` does).
      export PGRX_HOME=$work/pgrx
      "$root/tools/pgrx-home.sh" "$PGRX_HOME" "$major" "$(command -v "$pg_config")"
    fi
    "$root/tools/stage.sh" "$pg_config" release "$work/stage" >&2
    package_extension "$work/stage" "$major" "$out"
    ;;
  extension-stage)
    package_extension "${1:?stage dir}" "${2:?major}" "${3:?out dir}"
    ;;
  cli)
    out=${1:?out dir}
    command -v help2man >/dev/null || { echo "deb.sh: help2man missing (apt-get install help2man)"; exit 1; }
    (cd "$root" && "$cargo" build --locked --release -q -p month-lock-client --features cli --bin month-lock)
    bin=${CARGO_TARGET_DIR:-$root/target}/release/month-lock
    dest=$work/month-lock
    mkdir -p "$dest/usr/bin" "$dest/usr/share/man/man1"
    cp "$bin" "$dest/usr/bin/month-lock"
    strip --remove-section=.comment --remove-section=.note "$dest/usr/bin/month-lock"
    # The man page from --help (help2man): the top-level help without its footer, which becomes
    # EXIT STATUS (verbatim) and ENVIRONMENT; then each command's own help, verbatim.
    mkdir -p "$work/h2m"
    roff() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
    help=$("$dest/usr/bin/month-lock" --help)
    grep -q '^Exit codes:$' <<<"$help" && grep -q '^Connection: ' <<<"$help" \
      || { echo "deb.sh: month-lock --help lacks its Exit codes / Connection footer"; exit 1; }
    printf '#!/bin/sh\nif [ "$1" = --help ]; then "%s" --help | sed "/^Exit codes:/,\\$d"; else exec "%s" "$@"; fi\n' \
      "$dest/usr/bin/month-lock" "$dest/usr/bin/month-lock" >"$work/h2m/month-lock"
    chmod +x "$work/h2m/month-lock"
    {
      echo "[EXIT STATUS]"
      echo ".nf"
      sed -n '/^Exit codes:$/,/^$/p' <<<"$help" | sed -e '1d' -e '/^$/d' | roff
      echo ".fi"
      echo "[ENVIRONMENT]"
      sed -n '/^Connection: /,$p' <<<"$help" | roff
      echo "[COMMANDS]"
      for c in run status check; do
        echo ".SS \"month-lock $c\""
        echo ".nf"
        "$dest/usr/bin/month-lock" "$c" --help | sed -n '/^Exit codes:/q;p' | roff
        echo ".fi"
      done
    } >"$work/h2m/sections.h2m"
    help2man --no-info --no-discard-stderr --section=1 \
      --name="lock calendar months with the month_lock PostgreSQL extension" \
      --include="$work/h2m/sections.h2m" "$work/h2m/month-lock" \
      | gzip -9n >"$dest/usr/share/man/man1/month-lock.1.gz"
    crates -p month-lock-client --features cli >"$work/crates"
    write_doc "$dest" month-lock "$work/crates"
    overrides "$dest" month-lock "$pkg_dir/lintian-overrides.cli"
    build_deb "$dest" "$pkg_dir/control.cli.in" "$out" "month-lock_${deb_version}_$arch.deb" \
      "$(shlibs "$dest/usr/bin/month-lock")"
    ;;
  *)
    echo "deb.sh: unknown mode '$mode'"; exit 2 ;;
esac
