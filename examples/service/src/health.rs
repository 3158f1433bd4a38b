//! `GET /health`: the cache's state as JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::routes::AppState;

/// `{"remote": ..., "stats": ...}`: the remote tier's health (`null` without
/// one) and the cache's counters; 503 while the remote tier does not answer.
pub async fn show(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let cache = &state.users.cache;
    let remote = cache.health().await;
    let status = match &remote {
        Some(health) if !health.connected => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let body = json!({
        "status": if status.is_success() { "healthy" } else { "unhealthy" },
        "remote": remote,
        "stats": cache.stats(),
    });
    (status, Json(body))
}
