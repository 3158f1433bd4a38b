//! Settings that were accepted but could not be what was meant are refused:
//! a default TTL of 0 (caching off without a word), a `refresh_ahead` beta
//! above 100 or not above 0 (every hit refreshing, or nothing), and two
//! `CACHE_PROFILE_*` variables naming one profile (which wins depended on
//! the order).

use std::time::Duration;

use cache_runtime::{Cache, Error, Policy};

fn env_error(vars: &[(&str, &str)]) -> String {
    match Cache::builder().memory(10).env_from(vars.iter().copied()) {
        Ok(builder) => panic!("{vars:?} was accepted: {builder:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_default_ttl_of_0_in_the_environment_is_refused() {
    for zero in ["0", "0s", "0ms"] {
        let err = env_error(&[("CACHE_DEFAULT_TTL", zero)]);
        assert!(err.contains("CACHE_DEFAULT_TTL"), "{err}");
        assert!(err.contains("CACHE_DISABLED"), "{err}");
    }
    assert!(Cache::builder()
        .memory(10)
        .env_from([("CACHE_DEFAULT_TTL", "1ms")])
        .is_ok());
}

#[tokio::test]
async fn a_default_ttl_of_0_is_refused_by_build() {
    let built = Cache::builder()
        .memory(10)
        .default_ttl(Duration::ZERO)
        .build()
        .await;
    match built {
        Err(Error::Config(why)) => assert!(why.contains("default_ttl(0)"), "{why}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn refresh_ahead_in_a_profile_variable_is_above_0_and_at_most_100() {
    for beta in ["1e308", "100.5", "1000", "0", "-1", "NaN", "inf"] {
        let value = format!("ttl=1m,refresh_ahead={beta}");
        let err = env_error(&[("CACHE_PROFILE_HOT", &value)]);
        assert!(err.contains("CACHE_PROFILE_HOT"), "{beta}: {err}");
        assert!(err.contains("at most 100"), "{beta}: {err}");
    }
    for beta in ["100", "0.5", "1.0"] {
        let value = format!("refresh_ahead={beta}");
        assert!(
            Cache::builder()
                .memory(10)
                .env_from([("CACHE_PROFILE_HOT", value.as_str())])
                .is_ok(),
            "{beta}"
        );
    }
}

#[tokio::test]
async fn refresh_ahead_out_of_range_is_refused_by_build() {
    for beta in [1e308, 100.5, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        let as_profile = Cache::builder()
            .memory(10)
            .profile("hot", Policy::new().refresh_ahead(beta))
            .build()
            .await;
        match as_profile {
            Err(Error::Config(why)) => {
                assert!(why.contains("profile \"hot\""), "{beta}: {why}")
            }
            other => panic!("{beta}: expected Error::Config, got {other:?}"),
        }
        let as_default = Cache::builder()
            .memory(10)
            .defaults(Policy::new().refresh_ahead(beta))
            .build()
            .await;
        assert!(
            matches!(as_default, Err(Error::Config(_))),
            "{beta}: {as_default:?}"
        );
    }
    let fine = Cache::builder()
        .memory(10)
        .defaults(Policy::new().refresh_ahead(100.0))
        .profile("hot", Policy::new().refresh_ahead(1.0))
        .build()
        .await;
    assert!(fine.is_ok(), "{fine:?}");
}

#[test]
fn two_variables_naming_one_profile_are_refused() {
    for (a, b) in [
        ("CACHE_PROFILE_ODD", "CACHE_PROFILE_odd"),
        ("CACHE_PROFILE_A_B", "CACHE_PROFILE_a_B"),
        ("CACHE_PROFILE_A_B", "CACHE_PROFILE_A-B"),
    ] {
        // In either order: which one would win is not the question.
        for vars in [
            [(a, "ttl=1m"), (b, "ttl=2h")],
            [(b, "ttl=2h"), (a, "ttl=1m")],
        ] {
            let err = env_error(&vars);
            assert!(err.contains(a) && err.contains(b), "{err}");
            assert!(err.contains("same profile"), "{err}");
        }
    }
}
