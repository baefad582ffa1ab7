//! bareapi: an HTTP API server written directly on hyper 1.x and tokio, built to be measured.
//!
//! # Layout
//! The modules form layers; each uses only those listed after it.
//! - [`server`]: start-up (`run`), listeners, the per-core and multi-thread runtimes,
//!   connections (hyper's builders, TLS), hyper's header timer, the `--metrics-listen` listener.
//! - [`service`]: the hyper service: match the route once, answer at once or run boxed under
//!   the timeout, map errors and panics, stamp headers, record metrics.
//! - [`handlers`]: one module per resource (`techempower`: the TechEmpower suite, `users`,
//!   `sessions`, `docs`: the OpenAPI document, `ops`) and `plan`, each endpoint's kind of work.
//! - [`app`]: the state handlers run against (process-wide and per worker).
//! - [`routes`]: the route table (every endpoint, its method and path template).
//! - [`router`]: the matched-path router (method + template → handler, params, template label).
//! - [`auth`]: password hashing, session tokens, bearer tokens.
//! - [`error`]: the HTTP error type and its one mapping to problem+json.
//! - [`cache`]: the world-row cache behind `/cached-queries`.
//! - [`db`]: the pool and shared connections, migrations, one module per table.
//! - [`http`]: body type, static headers, JSON in and out, request bodies, `Date`, query
//!   parsing, compression, caching headers and their negotiation; its own `RequestError`.
//! - [`metrics`]: lock-free per-worker counters and the Prometheus text format.
//! - [`session_sweeper`]: the one task per process that deletes expired and revoked sessions.
//! - [`shutdown`]: the two-phase shutdown signal.
//! - [`sleeps`]: the tokio sleeps a connection reuses for its timeouts.
//! - [`html`]: escaping and the fortunes page.
//! - [`validation`]: the users API's field rules.
//! - [`config`]: flags and environment, settings per subsystem, documented defaults.
//! - [`causes`]: error cause chains for log lines and the exit message.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod abuse;
pub mod app;
pub mod auth;
pub mod cache;
pub mod causes;
pub mod config;
pub mod db;
pub mod error;
pub mod handlers;
pub mod html;
pub mod http;
pub mod metrics;
pub mod router;
pub mod routes;
pub mod server;
pub mod service;
pub mod session_sweeper;
pub mod shutdown;
pub mod sleeps;
pub mod validation;
