# The npm package `month-lock` (node/): TypeScript for postgres.js and node-postgres.
#
#   make node-test   build and install the extension into the private tree, `npm ci` in node/
#                    (skipped while node_modules matches package-lock.json), then `npm test`
#                    (build, type-check the docs' example, node:test suites incl. PgBouncer and
#                    the `npm pack` install) against a throwaway cluster as an ordinary role.

NODE_DIR := node

.PHONY: node-deps node-test

# Node 18+ and npm: present on the CI image; Debian's packages otherwise.
node-deps:
	@command -v npm >/dev/null 2>&1 || tools/provision.sh apt nodejs npm
	@cd $(NODE_DIR) && if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then \
	  echo "node_modules matches package-lock.json"; \
	else \
	  npm ci --no-audit --no-fund; \
	fi

node-test: tree-install node-deps
	@echo "=== month_lock suite: node (PostgreSQL $(PG)) ==="
	tools/with-cluster.sh $(TEST_PG_CONFIG) env -u DATABASE_URL sh -c 'cd $(NODE_DIR) && npm test'

EXTRA_TESTS += node-test

# The cost of a hold with each driver beside the same SQL by hand; writes bench/node-results.md.
# Part of `make bench` (which builds the release tree first).
.PHONY: node-bench
node-bench: tree-install node-deps
	tools/with-cluster.sh $(TEST_PG_CONFIG) env -u DATABASE_URL sh -c \
	  'cd $(NODE_DIR) && npm run --silent build && npm run --silent build:test && node build/bench/roundtrip.js ../bench/node-results.md'

bench-run: node-bench
