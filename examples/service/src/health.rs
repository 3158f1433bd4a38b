//! `GET /health`: the cache's health report as JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cache_runtime::HealthReport;

use crate::routes::AppState;

/// `Cache::health_report()` as JSON: `status` (`healthy`, `degraded` or
/// `unhealthy`), `reasons`, the window's figures, the remote tier's state and
/// the lifetime stats. 503 when unhealthy (a load balancer then stops sending
/// traffic here), 200 otherwise: a degraded cache still serves.
pub async fn show(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let report = state.users.cache.health_report().await;
    let status = StatusCode::from_u16(report.status.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(report))
}
