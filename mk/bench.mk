# The benchmark's own prerequisites and shortcuts (bench/README.md). `make bench` and
# `make bench-run` are defined in the Makefile; this file adds to them.
#
#   make bench-pairs   only the try+release pair figures (callgrind instructions and the
#                      in-server wall-clock loop), into a temporary directory
#   make bench-quick   every figure, shortened (a check of the benchmark itself)

.PHONY: bench-valgrind bench-pairs bench-pairs-run bench-quick

# The pair figure counts instructions under valgrind (Debian's package).
bench-valgrind:
	@if command -v valgrind >/dev/null 2>&1; then \
	  echo "valgrind present"; \
	else \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind </dev/null; \
	fi

bench-run: bench-valgrind

bench-pairs:
	$(MAKE) --no-print-directory bench-pairs-run TEST_PROFILE=release

bench-pairs-run: tree-install bench-valgrind
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	PG_CONFIG=$(TEST_PG_CONFIG) MONTH_LOCK_BENCH_ONLY=pair_instructions,pair_time \
	  $(CARGO) run --locked --release -q -p month-lock-bench

bench-quick:
	$(MAKE) --no-print-directory bench-run TEST_PROFILE=release MONTH_LOCK_BENCH_QUICK=1
