#!/usr/bin/env bash
# Usage: install.sh [PG_CONFIG]      (in a month_lock package: lib/ and extension/ beside it)
#        tools/install-files.sh STAGE_DIR PG_CONFIG
#
# Installs month_lock's files into the PostgreSQL that PG_CONFIG names: lib/* into
# `pg_config --pkglibdir`, extension/* into `pg_config --sharedir`/extension.
#
# Every file is written under a temporary name in the target directory and then renamed over
# the old one (as install(1) and PGXS do). A backend that has the old library loaded keeps its
# mapping of the old file (a different inode) and goes on working; rewriting the loaded file in
# place (cp, sudo cp, truncate + write) would crash it with SIGSEGV.
set -euo pipefail
if [ -d "$(dirname "$0")/lib" ] && [ -d "$(dirname "$0")/extension" ] && [ $# -le 1 ]; then
  stage=$(cd "$(dirname "$0")" && pwd)
  pg_config=${1:-${PG_CONFIG:-pg_config}}
else
  stage=${1:?stage dir}
  pg_config=${2:?pg_config}
fi
pkglibdir=$("$pg_config" --pkglibdir)
extdir=$("$pg_config" --sharedir)/extension

install_file() { # src dest_dir mode
  local src=$1 dir=$2 mode=$3 name tmp
  name=$(basename "$src")
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.$name.XXXXXX")
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dir/$name"
  echo "installed $dir/$name"
}

for f in "$stage"/lib/*; do install_file "$f" "$pkglibdir" 755; done
for f in "$stage"/extension/*; do install_file "$f" "$extdir" 644; done
