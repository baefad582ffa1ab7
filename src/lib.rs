//! bareapi: an HTTP API server written directly on hyper 1.x and tokio, built to be measured.
//!
//! # Layout
//! - [`config`]: flags and environment, one struct per subsystem.
//! - [`server`]: start-up (`run`), listeners, the per-core and multi-thread runtimes,
//!   connections, graceful shutdown, hyper's lazy timer.
//! - [`service`]: the hyper service: route, handle, map errors and panics, stamp headers.
//! - [`router`]: the matched-path router (method + template → handler, params, template label).
//! - [`handlers`]: the route table and one module per resource (`bench`: TechEmpower suite,
//!   `users`, `sessions`, `docs`: the OpenAPI document).
//! - [`auth`]: password hashing, session tokens, bearer tokens.
//! - [`validation`]: the users API's field rules.
//! - [`app`]: the per-worker state handlers run against.
//! - [`db`]: the pool and shared connections, migrations, one module per table.
//! - [`http`]: body type, static headers, JSON in and out, request bodies, `Date`, query
//!   parsing, compression, caching headers and their negotiation.
//! - [`html`]: escaping and the fortunes page.
//! - [`cache`]: the world-row cache behind `/cached-queries`.
//! - [`error`]: the HTTP error type and its one mapping to problem+json.
//! - [`metrics`]: lock-free per-worker counters and the Prometheus text format.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod handlers;
pub mod html;
pub mod http;
pub mod metrics;
pub mod router;
pub mod server;
pub mod service;
pub mod validation;
