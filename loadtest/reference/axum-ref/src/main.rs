//! The axum reference server of the load-test suite: bareapi's benchmark and users-read routes,
//! written the way a competent team writes an axum service — tokio multi-thread runtime, an
//! axum `Router`, one shared deadpool-postgres pool with `prepare_cached` statements, serde for
//! JSON and mimalloc as the allocator.
//!
//!   axum-ref --listen 127.0.0.1:PORT [--workers N] [--pool-size N]
//!
//! `DATABASE_URL` (postgres://user@host:port/db) names the database, whose tables bareapi's
//! migrations created. Once listening, one line `listening addr=IP:PORT` goes to stdout.

mod error;
mod tfb;
mod users;

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::SERVER;
use axum::routing::get;
use axum::serve::ListenerExt;
use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use quick_cache::sync::Cache;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::tfb::World;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Wait, create and recycle timeout of the pool.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(name = "axum-ref", about = "axum reference server for bareapi's load tests")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    listen: SocketAddr,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Maximum number of database connections.
    #[arg(long, default_value = "16")]
    pool_size: NonZeroUsize,
}

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    /// `world` rows for `/cached-queries`, filled at start-up.
    pub cache: Cache<i32, World>,
}

pub type SharedState = Arc<AppState>;

fn main() -> ExitCode {
    let args = Args::parse();
    let Ok(database_url) = std::env::var("DATABASE_URL") else {
        eprintln!("axum-ref: DATABASE_URL must be set (postgres://user@host:port/db)");
        return ExitCode::FAILURE;
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        builder.worker_threads(n.get());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("axum-ref: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, &database_url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-ref: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, database_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let pg_config: tokio_postgres::Config = database_url.parse()?;
    let manager = Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(args.pool_size.get())
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(DB_TIMEOUT))
        .create_timeout(Some(DB_TIMEOUT))
        .recycle_timeout(Some(DB_TIMEOUT))
        .build()?;

    let cache = Cache::new(tfb::WORLD_ROWS as usize);
    if let Err(e) = tfb::fill_cache(&pool, &cache).await {
        // Not fatal: /cached-queries reads through on a miss.
        eprintln!("axum-ref: filling the world cache failed: {e}");
    }
    let state: SharedState = Arc::new(AppState { pool, cache });

    let app = Router::new()
        .route("/plaintext", get(tfb::plaintext))
        .route("/json", get(tfb::json))
        .route("/db", get(tfb::db))
        .route("/queries", get(tfb::queries))
        .route("/fortunes", get(tfb::fortunes))
        .route("/updates", get(tfb::updates))
        .route("/cached-queries", get(tfb::cached_queries))
        .route("/api/users", get(users::list))
        .route("/api/users/{id}", get(users::get_one))
        .layer(SetResponseHeaderLayer::overriding(SERVER, HeaderValue::from_static("axum-ref")))
        .with_state(state);

    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening addr={addr}")?;
        out.flush()?;
    }
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
