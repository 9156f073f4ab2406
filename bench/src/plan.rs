//! What a run measures and how much of it: the full plan of `make bench`, or the shortened one
//! of `MONTH_LOCK_BENCH_QUICK=1` (a smoke test of the benchmark itself; its figures mean little).

/// How much of everything to do.
pub struct Plan {
    pub quick: bool,
    /// Figure 1, one case per queue length, in this order.
    pub handoff: Vec<HandoffCase>,
    /// Figure 2: (timeout ms, repetitions), in this order.
    pub timeouts: Vec<(u32, usize)>,
    /// Figure 3a: try+release pairs in the one statement, and interleaved repetitions.
    pub in_server_pairs: u64,
    pub in_server_reps: usize,
    /// Figure 3b: one case per protocol mode (`simple`, `prepared`) and client count;
    /// interleaved runs of `pgbench_secs` each.
    pub pgbench_modes: Vec<&'static str>,
    pub pgbench_clients: Vec<u32>,
    pub pgbench_secs: u32,
    pub pgbench_reps: usize,
    /// Figure 4: waiters on a month that stays held, for `wait_secs`.
    pub waiters: usize,
    pub wait_secs: u32,
    /// Figure 5: workers over the 12 months of a year, for `throughput_secs`.
    pub workers: usize,
    pub throughput_secs: u32,
    /// Figure 6: handoff chains, one per queue length; `chain_runs` runs of each method,
    /// interleaved.
    pub chain_waiters: Vec<usize>,
    pub chain_runs: usize,
    /// Figure 7: other advisory locks held while `month_is_locked` is timed, and timed calls
    /// of each method per size (interleaved).
    pub lookup_table_sizes: Vec<u64>,
    pub lookup_reps: usize,
    /// Figure 8: months held before one `release_all` call, and interleaved repetitions.
    pub release_all_held: Vec<u64>,
    pub release_all_reps: usize,
    /// Figure 9: interleaved runs of each backfill method (120 months, 8 workers, 20 ms each).
    pub backfill_runs: usize,
    /// Figure 10: autocommit token statements (and as many plain `nextval` calls).
    pub token_statements: usize,
}

/// One queue length of figure 1; each round is `waiters` handoffs. Polling needs fewer rounds:
/// only its median enters a target, and its rounds take 100 times longer.
pub struct HandoffCase {
    pub waiters: usize,
    /// Rounds of month_lock and of the built-in queued wait.
    pub queued_rounds: usize,
    pub polling_rounds: usize,
}

const fn case(waiters: usize, queued_rounds: usize, polling_rounds: usize) -> HandoffCase {
    HandoffCase {
        waiters,
        queued_rounds,
        polling_rounds,
    }
}

impl Plan {
    /// The quick plan when `MONTH_LOCK_BENCH_QUICK` is set to anything but "" or "0".
    pub fn from_env() -> Plan {
        let quick =
            std::env::var("MONTH_LOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Plan::quick()
        } else {
            Plan::full()
        }
    }

    pub fn full() -> Plan {
        Plan {
            quick: false,
            handoff: vec![case(1, 300, 100), case(8, 40, 12), case(64, 6, 3)],
            timeouts: vec![(50, 20), (200, 10), (1000, 5)],
            in_server_pairs: 200_000,
            in_server_reps: 7,
            pgbench_modes: vec!["simple", "prepared"],
            pgbench_clients: vec![1, 4, 16],
            pgbench_secs: 2,
            pgbench_reps: 4,
            waiters: 64,
            wait_secs: 10,
            workers: 64,
            throughput_secs: 10,
            chain_waiters: vec![1, 10, 100, 500],
            chain_runs: 3,
            lookup_table_sizes: vec![0, 10_000, 100_000],
            lookup_reps: 30,
            release_all_held: vec![1, 10, 100, 1000],
            release_all_reps: 15,
            backfill_runs: 3,
            token_statements: 2000,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            quick: true,
            handoff: vec![case(1, 15, 10), case(8, 2, 2), case(64, 1, 1)],
            timeouts: vec![(50, 3), (200, 2), (1000, 1)],
            in_server_pairs: 50_000,
            in_server_reps: 3,
            pgbench_modes: vec!["simple", "prepared"],
            pgbench_clients: vec![1, 4, 16],
            pgbench_secs: 1,
            pgbench_reps: 1,
            waiters: 64,
            wait_secs: 2,
            workers: 64,
            throughput_secs: 2,
            chain_waiters: vec![1, 10, 100],
            chain_runs: 1,
            lookup_table_sizes: vec![0, 10_000, 100_000],
            lookup_reps: 3,
            release_all_held: vec![1, 10, 100, 1000],
            release_all_reps: 3,
            backfill_runs: 1,
            token_statements: 200,
        }
    }
}
