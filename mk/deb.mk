# Debian packages (tools/deb.sh; packaging/debian/):
#
#   make deb         dist/postgresql-NN-month-lock_VERSION-1_ARCH.deb for each of PACKAGE_PGS
#                    (default 14..18), each built (release) against the private tree of NN, and
#                    dist/month-lock_CLI_VERSION-1_ARCH.deb (the command; its version is the
#                    client crate's, packaging/debian/changelog.cli)
#   make deb-lint    lintian on $(DEB_DIST)/*.deb (warnings and errors fail; overrides give reasons)
#   make deb-test    builds the 15 package and the command's, installs them with apt-get into
#                    this machine's Debian PostgreSQL 15 (/usr/lib/postgresql/15), upgrades an
#                    older package under a loaded session, runs SQL checks, the SQL suites and
#                    the command, removes and purges them again (tools/deb-test.sh), and runs
#                    the Dockerfiles' install step here
#
# deb-test joins `make test` for PG=15 only: it tests Debian's PostgreSQL 15 whatever PG is.

DEB_APT_PACKAGES := dpkg-dev binutils lintian help2man
DEB_DIST ?= dist
# A second build for the reproducibility check of deb-test.
DEB_AGAIN = $(PG_CACHE)/deb-again/$(CHECKOUT_ID)
# The older package of the upgrade test is made from the debug build that tree-install stages.
DEB_OLD_STAGE = $(call stage_of,15,dev)

.PHONY: deb deb-deps deb-lint deb-test

deb-deps:
	$(call apt_ensure,$(DEB_APT_PACKAGES))

deb: deps deb-deps
	@mkdir -p $(DEB_DIST)
	@set -e; $(foreach v,$(PACKAGE_PGS),$(MAKE) --no-print-directory pg-tree PG=$(v);)
	@set -e; $(foreach v,$(PACKAGE_PGS),\
	  PGRX_HOME=$(call pgrx_home_of,$(v)) CARGO=$(CARGO) tools/deb.sh extension $(call pg_config_of,$(v)) $(DEB_DIST);)
	@CARGO=$(CARGO) tools/deb.sh cli $(DEB_DIST)

deb-lint: deb-deps
	lintian --fail-on error,warning --info $(DEB_DIST)/*.deb

deb-test: deb-deps
	$(MAKE) --no-print-directory deb PACKAGE_PGS=15
	rm -rf $(DEB_AGAIN)
	$(MAKE) --no-print-directory deb PACKAGE_PGS=15 DEB_DIST=$(DEB_AGAIN)
	$(MAKE) --no-print-directory tree-install PG=15 TEST_PROFILE=dev
	@echo "=== month_lock suite: deb (Debian's PostgreSQL 15) ==="
	CARGO=$(CARGO) DEB_PGS="$(ALL_PGS)" tools/deb-test.sh dist $(DEB_AGAIN) $(DEB_OLD_STAGE)

ifeq ($(PG),15)
EXTRA_TESTS += deb-test
endif
