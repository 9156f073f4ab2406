//! Summaries of samples and how the report prints numbers.

/// Distribution summary (nearest-rank percentiles), in the unit of the samples.
#[derive(Clone, Debug)]
pub struct Dist {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(samples: &[f64]) -> Dist {
        assert!(!samples.is_empty());
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Dist {
            n: s.len(),
            min: s[0],
            p50: rank(0.50),
            p99: rank(0.99),
            max: s[s.len() - 1],
        }
    }
}

/// A duration in ms with sensible precision.
pub fn fms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// A time in µs with sensible precision.
pub fn fus(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

pub fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

pub fn plural(n: impl Into<u64>, word: &str) -> String {
    let n = n.into();
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `median (min–max)` of a spread of runs, in µs.
pub fn median_range_us(d: &Dist) -> String {
    format!("{} ({}–{})", fus(d.p50), fus(d.min), fus(d.max))
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::of(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!(
            (d.min, d.p50, d.p99, d.max, d.n),
            (1.0, 50.0, 99.0, 100.0, 100)
        );
        assert_eq!(Dist::of(&[3.0]).p99, 3.0);
    }
}
