//! Start-up: the metrics recorder, the cache, PostgreSQL, then the listener.

use std::time::Duration;

use cache_runtime::Cache;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;

use crate::routes::{router, AppState};
use crate::users::Users;
use crate::{db, Config};

/// The cache's namespace unless `CACHE_NAMESPACE` says otherwise.
pub const NAMESPACE: &str = "service";
/// Entries of the memory tier unless `CACHE_MEMORY_CAPACITY` says otherwise.
pub const MEMORY_CAPACITY: usize = 10_000;
/// How often the recorder's histograms are trimmed.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs the service until Ctrl-C or SIGTERM. Prints `listening on <addr>` on
/// stdout once the listener is bound (with `LISTEN_ADDR=127.0.0.1:0`, the
/// port picked).
///
/// # Errors
///
/// A failure to start: the recorder, the cache (e.g. a malformed `CACHE_*`
/// variable; an unreachable Redis is not one: the cache starts without it
/// and connects when it can), PostgreSQL, or the listener.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });

    let cache = Cache::builder()
        .namespace(NAMESPACE)
        .memory(MEMORY_CAPACITY)
        .env()?
        .build()
        .await?;
    let pool = db::pool(&config.database_url, config.pool_size)?;
    db::migrate(&pool).await?;

    let state = AppState {
        users: Users { cache, pool },
        metrics,
    };
    let listener = TcpListener::bind(config.listen_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    // Tests read the port from this line.
    println!("listening on {addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
