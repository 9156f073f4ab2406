# month_lock — every prerequisite goes through here, idempotently.
#
#   make demo     set up, build, install, run the live demonstration on a throwaway cluster
#   make test     set up, build, install, run every test (pgrx unit tests + multi-connection tests)
#   make install  build and install into the PostgreSQL that PG_CONFIG names (PGXS convention)
#   make bench    benchmarks (see bench/)
#
# PG_CONFIG defaults to Debian's PostgreSQL 15. Cargo builds go to CARGO_TARGET_DIR, by default
# a directory outside the clone so that repeated runs on one machine stay fast.

PG_CONFIG ?= /usr/bin/pg_config
PG_MAJOR := $(shell $(PG_CONFIG) --version 2>/dev/null | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
PGRX_VERSION := 0.18.1
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/month_lock-target
export PG_CONFIG

# Root installs directly; anyone else goes through sudo.
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
SUDO := $(if $(IS_ROOT),,sudo)
PGRX_SUDO_FLAG := $(if $(IS_ROOT),,--sudo)
# PostgreSQL refuses to run as root: the pgrx test cluster then runs as this OS user.
PG_OS_USER ?= postgres
PGTEST_DIR ?= /tmp/month_lock_pgrx_test
APT_PACKAGES := postgresql-15 postgresql-server-dev-15 clang libclang-dev sudo pkg-config

.PHONY: all deps apt-deps cargo-pgrx pgrx-init install pgtest itest test demo bench clean

all: install

## --- set-up ---------------------------------------------------------------------------------
deps: apt-deps cargo-pgrx pgrx-init

# $(call apt_ensure,packages): install the Debian packages that are missing, non-interactively.
define apt_ensure
	@if dpkg -s $(1) >/dev/null 2>&1; then \
	  echo "apt packages present: $(1)"; \
	else \
	  echo "installing apt packages: $(1)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(1) </dev/null; \
	fi
endef

apt-deps:
	$(call apt_ensure,$(APT_PACKAGES))
	@test -x "$(PG_CONFIG)" || command -v "$(PG_CONFIG)" >/dev/null || { echo "PG_CONFIG=$(PG_CONFIG) not found"; exit 1; }

cargo-pgrx:
	@if $(CARGO) pgrx --version 2>/dev/null | grep -q " $(PGRX_VERSION)$$"; then \
	  echo "cargo-pgrx $(PGRX_VERSION) present"; \
	else \
	  $(CARGO) install cargo-pgrx --version $(PGRX_VERSION) --locked --force; \
	fi

pgrx-init: cargo-pgrx
	@if grep -qs '^pg$(PG_MAJOR) = "$(shell $(PG_CONFIG) --bindir)/pg_config"' $(HOME)/.pgrx/config.toml \
	    || grep -qs '^pg$(PG_MAJOR) = "$(PG_CONFIG)"' $(HOME)/.pgrx/config.toml; then \
	  echo "pgrx initialised for PostgreSQL $(PG_MAJOR)"; \
	else \
	  $(CARGO) pgrx init --pg$(PG_MAJOR) "$(PG_CONFIG)"; \
	fi

## --- build and install ----------------------------------------------------------------------
install: deps
	cd extension && $(CARGO) pgrx install --release --pg-config "$(PG_CONFIG)" $(PGRX_SUDO_FLAG) \
	  --no-default-features --features pg$(PG_MAJOR)

## --- tests ----------------------------------------------------------------------------------
# Single-session semantics: #[pg_test]s inside one backend (pgrx's own throwaway cluster).
pgtest: deps
ifeq ($(IS_ROOT),yes)
	rm -rf $(PGTEST_DIR) && mkdir -p $(PGTEST_DIR) && chown $(PG_OS_USER) $(PGTEST_DIR)
	cd extension && $(CARGO) pgrx test pg$(PG_MAJOR) --runas $(PG_OS_USER) --pgdata $(PGTEST_DIR)/data \
	  --no-default-features --features "pg$(PG_MAJOR) pg_test"
else
	cd extension && $(CARGO) pgrx test pg$(PG_MAJOR) --no-default-features --features "pg$(PG_MAJOR) pg_test"
endif

# Multi-connection tests against a real server with the installed extension.
itest: install
	$(CARGO) test --locked -p month-lock-tests -p month-lock-client -- --show-output

test: pgtest itest

## --- demo -----------------------------------------------------------------------------------
demo: install
	$(CARGO) run --locked --release -q -p month-lock-tests --bin month-lock-demo

## --- benchmarks -----------------------------------------------------------------------------
# A few minutes on a throwaway cluster; writes bench/results.md, bench/results.json and
# bench/handoff_latency.png (the chart's text needs a TrueType font: DejaVu Sans).
BENCH_APT_PACKAGES := fonts-dejavu-core

bench: install
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	$(CARGO) run --locked --release -q -p month-lock-bench

clean:
	$(CARGO) clean
	rm -rf $(PGTEST_DIR)
