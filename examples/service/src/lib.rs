//! An axum + PostgreSQL service whose reads are cached with `cache-runtime`:
//! `cargo run -p service` with `DATABASE_URL` set (see [`config`]).
//!
//! - `GET /users/{id}`: one user, cached under `user:{id}` ([`users`]);
//! - `GET /users?team={team}`: a team's users, cached under `team:{team}`;
//! - `PUT /users/{id}` with `{"name": ..., "team": ...}`: updates the row and
//!   invalidates the user and both teams;
//! - `GET /metrics`: Prometheus text: the cache's metrics (feature `metrics`
//!   of cache-runtime) and `service_db_queries_total`;
//! - `GET /health`: the cache's health report as JSON, 503 when unhealthy.
//!
//! The library half also holds [`client`], the small HTTP/1.1 client of the
//! load generator (`src/bin/loadgen.rs`) and of the integration tests.

pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod routes;
pub mod server;
pub mod users;

pub use config::Config;
pub use server::run;
