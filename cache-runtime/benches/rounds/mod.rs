//! What the alternating-rounds benches (`hit_ratio`, `redis_ratio`) share:
//! they run outside criterion, so they read its command line and settings
//! themselves.

/// Whether `cargo bench` asked for the bench `name`: it passes `--bench`, and
/// a name filter that does not match skips it.
pub fn selected(name: &str) -> bool {
    !std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !name.contains(a.as_str()))
}

/// Rounds wanted: `RATIO_ROUNDS`, else `default`.
pub fn wanted(default: usize) -> usize {
    std::env::var("RATIO_ROUNDS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// The order of the sides in round `round`: rotated each round, so no side
/// always follows the same other.
pub fn order(round: usize, sides: usize) -> impl Iterator<Item = usize> {
    (0..sides).map(move |step| (round + step) % sides)
}

/// How per-round values spread: median, quartiles, range.
#[allow(dead_code)] // `hit_ratio` reads only the median
pub struct Spread {
    pub median: f64,
    pub low_quartile: f64,
    pub high_quartile: f64,
    pub min: f64,
    pub max: f64,
}

/// The spread of `values` (at least one).
pub fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Spread {
        median,
        low_quartile: sorted[n / 4],
        high_quartile: sorted[n * 3 / 4],
        min: sorted[0],
        max: sorted[n - 1],
    }
}
