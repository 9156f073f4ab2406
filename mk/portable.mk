# The SQL-only edition (docs/editions.md): month_lock's SQL API in PL/pgSQL on the built-in
# advisory lock functions, for managed PostgreSQL where the library cannot be loaded.
#
#   make portable       dist/month_lock-portable.sql (psql -f, as the database owner),
#                       dist/month_lock-pg_tle.sql (pgtle.install_extension), and
#                       dist/month_lock-portable-uninstall.sql
#   make portable-test  tests/portable/run.sh on a throwaway cluster of the private tree: the
#                       edition installed by a non-superuser owner, tests/regress against it,
#                       its own suite, cancel storms, other roles (planted overloads, objects
#                       created beforehand), native + SQL-only in one database, moving between
#                       editions while tokens are drawn, calls in flight during an upgrade in
#                       place, the pg_tle form (part of make test)
#   make portable-bench the in-server pair and handoff figures of both editions
#                       (bench/portable-results.md)

PORTABLE_DIST := dist
PORTABLE_BENCH_PG_CONFIG = $(call pg_config_of,$(PG),-release)
PORTABLE_SOURCES := $(sort $(wildcard sql/portable/*.sql)) sql/month_lock.sql tools/portable-build.sh extension/Cargo.toml

.PHONY: portable portable-test portable-bench

portable: $(PORTABLE_DIST)/month_lock-portable.sql

$(PORTABLE_DIST)/month_lock-portable.sql: $(PORTABLE_SOURCES)
	tools/portable-build.sh $(VERSION) $(PORTABLE_DIST)

# tree-install: the cross-edition and moving steps need the native extension in the tree.
portable-test: portable tree-install
	@echo "=== month_lock suite: portable (PostgreSQL $(PG)) ==="
	tools/with-cluster.sh $(TEST_PG_CONFIG) tests/portable/run.sh $(TEST_PG_CONFIG) $(CURDIR)/$(PORTABLE_DIST)

# The multi-connection suites and the client's against the SQL-only edition: the test kit
# installs dist/month_lock-portable.sql in each test database instead of CREATE EXTENSION
# (MONTH_LOCK_TEST_EDITION=portable). PORTABLE_SKIP names the tests of a native guarantee the
# edition does not keep (docs/editions.md, Differences), each for the reason given there.
PORTABLE_ITESTS := --test contention --test claim --test month_sets --test pooler --test roles
PORTABLE_CLIENT_TESTS := --test modes_and_waits --test release --test lost --test errors --test sets \
  --test with_lock --test cli --test cli_months --test planted_lookalike \
  --test dropped_cleanup_without_plpgsql --test two_in_flight_rollback --test search_path \
  --test schema_trust
# A session lock never outlives a failed request (no hook without the library; cancels racing
# the last grant of a set land after the function returned):
PORTABLE_SKIP := --skip a_failed_request_keeps_no_claimed_month \
  --skip cancel_statement_timeout_deadlock_and_failed_requests_leave_nothing \
  --skip cancel_or_timeout_racing_the_last_grant_is_all_or_nothing
# The client leaves the undo of a grant whose statement then failed to the extension's
# failed-request rule, which the edition does not have (same difference):
PORTABLE_CLIENT_SKIP := --skip an_acquire_that_fails_after_a_grant_leaves_nothing_held \
  --skip token_is_the_same_for_a_hold_and_larger_for_the_next_holder
# (the second: every month_lock_token call draws a new token, nothing is cached; docs/editions.md)
PORTABLE_ENV = MONTH_LOCK_TEST_EDITION=portable \
  MONTH_LOCK_PORTABLE_SQL=$(CURDIR)/$(PORTABLE_DIST)/month_lock-portable.sql PG_CONFIG=$(TEST_PG_CONFIG)

.PHONY: portable-itest
portable-itest: portable tree-install
	@status=0; \
	echo "=== month_lock suite: portable-itest (PostgreSQL $(PG)) ==="; \
	$(PORTABLE_ENV) $(CARGO) test --locked --no-fail-fast -p month-lock-tests $(PORTABLE_ITESTS) \
	  -- $(PORTABLE_SKIP) || status=1; \
	$(PORTABLE_ENV) $(CARGO) test --locked --no-fail-fast -p month-lock-client --all-features \
	  $(PORTABLE_CLIENT_TESTS) -- $(PORTABLE_CLIENT_SKIP) || status=1; \
	exit $$status

# The edition's costs beside the native extension's, on a throwaway cluster (release build).
portable-bench: portable
	$(MAKE) --no-print-directory tree-install TEST_PROFILE=release
	tools/with-cluster.sh $(PORTABLE_BENCH_PG_CONFIG) \
	  bench/portable.sh $(PORTABLE_BENCH_PG_CONFIG) $(CURDIR)/$(PORTABLE_DIST) bench/portable-results.md

EXTRA_TESTS += portable-test portable-itest
# make bench measures both editions side by side (bench/portable-results.md) before its own run.
bench: portable-bench

# The portable suite with every phase of the cancel storm, the statistical ones too (fresh
# acquisitions and releases: docs/editions.md, Cancels); not part of `make test`.
.PHONY: portable-storm
portable-storm:
	$(MAKE) --no-print-directory portable-test MONTH_LOCK_STORM_PHASES="reentry fresh xact release"
