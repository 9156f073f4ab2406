#!/usr/bin/env bash
# Usage: tools/with-cluster.sh PG_CONFIG COMMAND [ARGS...]
#
# Runs COMMAND against a throwaway cluster of the installation PG_CONFIG names, with
# PGHOST/PGPORT/PGUSER/PGDATABASE set, then deletes the cluster; exits with COMMAND's status (1
# if a backend crashed). The test kit's starter: tests/src/bin/with_cluster.rs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"${CARGO:-cargo}" build --locked -q --manifest-path "$root/Cargo.toml" -p month-lock-tests --bin with-cluster
exec "${CARGO_TARGET_DIR:-$root/target}/debug/with-cluster" "$@"
