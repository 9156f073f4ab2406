# The SQL-only edition (docs/editions.md): month_lock's SQL API in PL/pgSQL on the built-in
# advisory lock functions, for managed PostgreSQL where the library cannot be loaded.
#
#   make portable       dist/month_lock-portable.sql (psql -f, as the database owner),
#                       dist/month_lock-pg_tle.sql (pgtle.install_extension), and
#                       dist/month_lock-portable-uninstall.sql
#   make portable-test  tests/portable/run.sh on a throwaway cluster of the private tree: the
#                       edition installed by a non-superuser owner, tests/regress against it,
#                       its own suite, native + SQL-only in one database, moving between
#                       editions, the pg_tle form (part of make test)
#   make portable-bench the in-server pair and handoff figures of both editions
#                       (bench/portable-results.md)

PORTABLE_DIST := dist
PORTABLE_BENCH_TREE = $(PG_CACHE)/trees/$(CHECKOUT_ID)-release/$(PG)
PORTABLE_BENCH_PG_CONFIG = $(if $(filter 15,$(PG)),$(PORTABLE_BENCH_TREE)/usr/lib/postgresql/15/bin/pg_config,$(PORTABLE_BENCH_TREE)/bin/pg_config)
PORTABLE_SOURCES := sql/portable/month_lock-portable.sql sql/month_lock.sql tools/portable-build.sh Cargo.toml

.PHONY: portable portable-test portable-bench

portable: $(PORTABLE_DIST)/month_lock-portable.sql

$(PORTABLE_DIST)/month_lock-portable.sql: $(PORTABLE_SOURCES)
	tools/portable-build.sh $(VERSION) $(PORTABLE_DIST)

# tree-install: the cross-edition and moving steps need the native extension in the tree.
portable-test: portable tree-install
	@echo "=== month_lock suite: portable (PostgreSQL $(PG)) ==="
	tools/with-cluster.sh $(TEST_PG_CONFIG) tests/portable/run.sh $(TEST_PG_CONFIG) $(CURDIR)/$(PORTABLE_DIST)

# The edition's costs beside the native extension's, on a throwaway cluster (release build).
portable-bench: portable
	$(MAKE) --no-print-directory tree-install TEST_PROFILE=release
	tools/with-cluster.sh $(PORTABLE_BENCH_PG_CONFIG) \
	  bench/portable.sh $(PORTABLE_BENCH_PG_CONFIG) $(CURDIR)/$(PORTABLE_DIST) bench/portable-results.md

EXTRA_TESTS += portable-test
