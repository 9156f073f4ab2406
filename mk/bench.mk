# The benchmarks (bench/README.md): a few minutes on a throwaway cluster, release build; writes
# bench/results.md and bench/handoff_latency.png.
#
#   make bench         every figure
#   make bench-pairs   only the try+release pair figures (callgrind instructions and the
#                      in-server wall-clock loop), into a temporary directory
#   make bench-quick   every figure, shortened (a check of the benchmark itself)

.PHONY: bench bench-run bench-valgrind bench-pairs bench-pairs-run bench-quick

# The chart's text needs a TrueType font (DejaVu Sans).
BENCH_APT_PACKAGES := fonts-dejavu-core

bench:
	$(MAKE) --no-print-directory bench-run TEST_PROFILE=release

bench-run: tree-install bench-valgrind
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	PG_CONFIG=$(TEST_PG_CONFIG) $(CARGO) run --locked --release -q -p month-lock-bench

# The pair figure counts instructions under valgrind (Debian's package).
bench-valgrind:
	$(call apt_ensure,valgrind)


bench-pairs:
	$(MAKE) --no-print-directory bench-pairs-run TEST_PROFILE=release

bench-pairs-run: tree-install bench-valgrind
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	PG_CONFIG=$(TEST_PG_CONFIG) MONTH_LOCK_BENCH_ONLY=pair_instructions,pair_time \
	  $(CARGO) run --locked --release -q -p month-lock-bench

bench-quick:
	$(MAKE) --no-print-directory bench-run TEST_PROFILE=release MONTH_LOCK_BENCH_QUICK=1
