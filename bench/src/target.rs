//! A target is written once, as a constant next to the figure it judges: the verdict of a run
//! compares against its limit, and its sentence in results.md and in bench/README.md is
//! rendered from it.

#[derive(Clone, Copy)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// "`measure` ≤ `limit``unit`", e.g. "p99 ≤ 1.1× built-in".
pub struct Target {
    pub measure: &'static str,
    pub bound: Bound,
    /// Printed right after the limit: "× built-in", " ms", "% of one core".
    pub unit: &'static str,
}

impl Target {
    pub fn met(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
        }
    }

    pub fn limit(&self) -> f64 {
        match self.bound {
            Bound::AtMost(l) | Bound::AtLeast(l) => l,
        }
    }

    pub fn text(&self) -> String {
        let (op, limit) = match self.bound {
            Bound::AtMost(l) => ("≤", l),
            Bound::AtLeast(l) => ("≥", l),
        };
        format!("{} {op} {limit}{}", self.measure, self.unit)
    }

    /// "ok" or "missed" for a value.
    pub fn verdict(&self, value: f64) -> &'static str {
        if self.met(value) {
            "ok"
        } else {
            "missed"
        }
    }
}

/// The sentences of several targets of one row.
pub fn texts(targets: &[&Target]) -> String {
    targets
        .iter()
        .map(|t| t.text())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_judges_from_one_limit() {
        let t = Target {
            measure: "p99",
            bound: Bound::AtMost(1.1),
            unit: "× built-in",
        };
        assert_eq!(t.text(), "p99 ≤ 1.1× built-in");
        assert!(t.met(1.1) && !t.met(1.11));
        let t = Target {
            measure: "TPS",
            bound: Bound::AtLeast(0.97),
            unit: "×",
        };
        assert_eq!(t.text(), "TPS ≥ 0.97×");
        assert!(t.met(0.97) && !t.met(0.96));
    }
}
