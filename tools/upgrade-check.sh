#!/usr/bin/env bash
# Usage: tools/upgrade-check.sh PG_CONFIG [FROM_VERSION]     (default 0.1.0)
#
# The upgrade check, tests/tests/upgrade.rs, on a throwaway cluster of the installation
# PG_CONFIG names (which must have month_lock's current version, the released FROM_VERSION
# script and the upgrade scripts installed): FROM_VERSION installed with locks held, ALTER
# EXTENSION month_lock UPDATE, the locks still held, the catalog identical to a fresh install.
set -euo pipefail
pg_config=${1:?pg_config}
root=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=$pg_config MONTH_LOCK_UPGRADE_FROM=${2:-0.1.0} "${CARGO:-cargo}" test --locked -q \
  --manifest-path "$root/Cargo.toml" -p month-lock-tests --test upgrade -- --nocapture
