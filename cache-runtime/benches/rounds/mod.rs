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

/// The median of values already sorted.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
