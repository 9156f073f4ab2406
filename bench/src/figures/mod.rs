//! One module per figure: its plan (how much of it, full and quick), its measurement, its
//! typed result and the row(s) it renders, with its target beside it as a constant.
//! [`Figures`] holds them in the order of results.md.

pub mod backfill;
pub mod chain;
pub mod handoff;
pub mod lookup;
pub mod lookup_instructions;
pub mod pair_instructions;
pub mod pair_time;
pub mod pairs;
pub mod pgbench;
pub mod release_all;
pub mod single_user;
pub mod throughput;
pub mod timeout;
pub mod token;
pub mod waiting;

use crate::report::Row;
use crate::target::Target;
use month_lock_tests::TestDb;
use std::path::PathBuf;

/// What every measurement gets: the benchmark database, whether the run is the quick one, and
/// a directory for files (pgbench scripts).
pub struct Ctx {
    pub db: TestDb,
    pub quick: bool,
    pub work_dir: PathBuf,
}

/// The figures by name, in the order they run (`MONTH_LOCK_BENCH_ONLY` takes these names).
pub const NAMES: [&str; 13] = [
    "pair_instructions",
    "pair_time",
    "handoff",
    "timeout",
    "pgbench",
    "waiting",
    "throughput",
    "chain",
    "lookup",
    "lookup_instructions",
    "release_all",
    "backfill",
    "token",
];

/// Every target, for bench/README.md: (figure, target).
pub const TARGETS: [(&str, &Target); 9] = [
    (
        "Pair (instructions and ns, each of the three pairs)",
        &pairs::OVER_BUILTIN,
    ),
    ("Handoff", &handoff::P99),
    ("Handoff", &handoff::POLLING_P50),
    ("Timeout", &timeout::OVERSHOOT),
    (
        "pgbench (simple and prepared, 1/4/16 clients)",
        &pgbench::TPS,
    ),
    ("Waiting", &waiting::QUERIES),
    ("Waiting", &waiting::CPU),
    ("Handoff chain", &chain::PER_HANDOFF),
    ("Is the month locked?", &lookup::FLAT),
];

/// The figures a run took (`None` or empty: not selected).
#[derive(Default)]
pub struct Figures {
    pub pair_instructions: Option<pair_instructions::PairInstructions>,
    pub pair_time: Option<pair_time::PairTime>,
    pub handoff: Vec<handoff::Handoff>,
    pub timeout: Vec<timeout::Timeout>,
    pub pgbench: Vec<pgbench::Pgbench>,
    pub waiting: Option<waiting::Waiting>,
    pub throughput: Option<throughput::Throughput>,
    pub chain: Vec<chain::Chain>,
    pub lookup: Vec<lookup::Lookup>,
    pub lookup_instructions: Option<lookup_instructions::LookupInstructions>,
    pub release_all: Vec<release_all::ReleaseAll>,
    pub backfill: Option<backfill::Backfill>,
    pub token: Option<token::Token>,
}

impl Figures {
    /// The rows of the main table (the figures with a column per method).
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.handoff.iter().map(|f| f.row()).collect();
        rows.extend(self.timeout.iter().map(|f| f.row()));
        rows.extend(self.pgbench.iter().map(|f| f.row()));
        rows.extend(self.waiting.iter().map(|f| f.row()));
        rows.extend(self.throughput.iter().map(|f| f.row()));
        rows.extend(self.chain.iter().map(|f| f.row()));
        rows.extend(self.lookup_instructions.iter().flat_map(|f| f.rows()));
        rows.extend(self.lookup.iter().flat_map(|f| f.rows()));
        rows.extend(self.release_all.iter().map(|f| f.row()));
        rows.extend(self.token.iter().map(|f| f.row()));
        rows
    }

    /// The rows of the pair table.
    pub fn pair_rows(&self) -> Vec<pairs::PairRow> {
        let mut rows = Vec::new();
        for pair in pairs::Pair::ALL {
            let instr = self.pair_instructions.iter().flat_map(|f| f.rows());
            let time = self.pair_time.iter().flat_map(|f| f.rows());
            rows.extend(instr.chain(time).filter(|r| r.pair == pair));
        }
        rows
    }

    /// Every target of the tables met, and every backfill did every month exactly once.
    pub fn all_targets_met(&self) -> bool {
        self.rows().iter().all(|r| r.met != Some(false))
            && self
                .pair_rows()
                .iter()
                .all(|r| pairs::OVER_BUILTIN.met(r.ratio))
            && self.backfill.as_ref().is_none_or(|b| b.all_exactly_once())
    }
}
