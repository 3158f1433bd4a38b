//! The HTTP routes, all answering JSON (but `/metrics`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use crate::db::User;
use crate::error::ApiError;
use crate::health;
use crate::users::Users;

/// Longest name or team a `PUT` accepts, in bytes.
pub const MAX_FIELD_LEN: usize = 200;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The cached reads and the update.
    pub users: Users,
    /// The Prometheus recorder's handle, rendered by `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The service's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/users/{id}", get(show_user).put(update_user))
        .route("/users", get(list_team))
        .route("/metrics", get(render_metrics))
        .route("/health", get(health::show))
        .with_state(state)
}

/// A rejected extractor as a JSON error with the rejection's own status.
fn rejected(status: StatusCode, text: String) -> ApiError {
    ApiError::new(status, text)
}

fn user_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = path.map_err(|e| rejected(e.status(), e.body_text()))?;
    Ok(id)
}

async fn show_user(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(path)?;
    match state.users.user(id).await? {
        Some(user) => Ok(Json(user)),
        None => Err(ApiError::not_found(format!("no user {id}"))),
    }
}

/// The query of `GET /users`.
#[derive(Debug, Deserialize)]
pub struct TeamQuery {
    /// The team's name.
    pub team: String,
}

async fn list_team(
    State(state): State<AppState>,
    query: Result<Query<TeamQuery>, QueryRejection>,
) -> Result<Json<Vec<User>>, ApiError> {
    let Query(TeamQuery { team }) = query.map_err(|e| rejected(e.status(), e.body_text()))?;
    // The team is part of a cache key: bounded like a PUT's fields.
    check_field("team", &team, StatusCode::BAD_REQUEST)?;
    Ok(Json(state.users.team(&team).await?))
}

/// The body of `PUT /users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// The new name.
    pub name: String,
    /// The new team.
    pub team: String,
}

impl UserUpdate {
    fn validate(&self) -> Result<(), ApiError> {
        check_field("name", &self.name, StatusCode::UNPROCESSABLE_ENTITY)?;
        check_field("team", &self.team, StatusCode::UNPROCESSABLE_ENTITY)
    }
}

/// A name or team: not blank, at most [`MAX_FIELD_LEN`] bytes; else `status`.
fn check_field(field: &str, value: &str, status: StatusCode) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.len() > MAX_FIELD_LEN {
        return Err(ApiError::new(
            status,
            format!("{field} must be 1 to {MAX_FIELD_LEN} bytes, not blank"),
        ));
    }
    Ok(())
}

async fn update_user(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<UserUpdate>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(path)?;
    let Json(update) = body.map_err(|e| rejected(e.status(), e.body_text()))?;
    update.validate()?;
    match state.users.update(id, &update.name, &update.team).await? {
        Some(user) => Ok(Json(user)),
        None => Err(ApiError::not_found(format!("no user {id}"))),
    }
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
