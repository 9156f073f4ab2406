#!/usr/bin/env bash
# Usage: tools/pgrx-home.sh PGRX_HOME MAJOR PG_CONFIG
#
# Makes PGRX_HOME a cargo-pgrx home whose config.toml names PG_CONFIG for pgMAJOR (what
# `cargo pgrx init` would write), without touching ~/.pgrx. Rewritten only when it changes.
set -euo pipefail
home=${1:?pgrx home}
major=${2:?major}
pg_config=${3:?pg_config}
mkdir -p "$home"
printf '[configs]\npg%s = "%s"\n' "$major" "$pg_config" >"$home/config.toml.new"
if cmp -s "$home/config.toml.new" "$home/config.toml" 2>/dev/null; then
  rm "$home/config.toml.new"
else
  mv "$home/config.toml.new" "$home/config.toml"
fi
