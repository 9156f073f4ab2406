#!/usr/bin/env bash
# Usage: tools/install-while-loaded.sh PG_CONFIG STAGE_DIR ALT_STAGE_DIR [MODE]
#
# A session with month_lock's library loaded keeps working across an install of ALT_STAGE_DIR's
# (different) build into the installation PG_CONFIG names, which has STAGE_DIR's build; STAGE_DIR's
# is installed again at the end. The test, tests/tests/install_while_loaded.rs, runs on a
# throwaway cluster of its own. MODE=cp (to see it fail, never in `make test`) copies the new
# library over the old file in place instead of renaming.
set -euo pipefail
pg_config=${1:?pg_config}
stage=$(cd "${2:?stage dir}" && pwd)
alt_stage=$(cd "${3:?alternative stage dir}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=$pg_config MONTH_LOCK_STAGE=$stage MONTH_LOCK_ALT_STAGE=$alt_stage \
  MONTH_LOCK_INSTALL_MODE=${4:-rename} "${CARGO:-cargo}" test --locked -q \
  --manifest-path "$root/Cargo.toml" -p month-lock-tests --test install_while_loaded \
  -- --ignored --nocapture
