//! The two runtime layouts. Per-core: one OS thread per worker, each running a current-thread
//! tokio runtime with its own listener and its own [`App`]. Multi-thread: one work-stealing
//! runtime, one listener, one [`App`]. Both run the same accept loop and service.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{App, HttpSettings, UsersSettings};
use crate::cache::WorldCache;
use crate::config::DbConfig;
use crate::db::Db;
use crate::server::connection;

/// What every worker needs to build its [`App`].
#[derive(Clone)]
pub struct WorkerSetup {
    pub db: DbConfig,
    pub worlds: Arc<WorldCache>,
    pub http: HttpSettings,
    pub users: UsersSettings,
}

/// Builds an [`App`] for the process's lifetime. Leaked on purpose: connection tasks borrow it
/// as `&'static` instead of cloning an `Arc` per request, and it lives until the process exits.
fn leak_app(setup: &WorkerSetup, pool_size: usize, shared_conns: usize) -> Result<&'static App, String> {
    let db = Db::new(&setup.db, pool_size, shared_conns)?;
    let app = App::new(db, Arc::clone(&setup.worlds), setup.http, setup.users).map_err(|e| e.to_string())?;
    Ok(Box::leak(Box::new(app)))
}

/// Accepts connections until the process ends, serving each on its own task.
pub async fn accept_loop(listener: TcpListener, app: &'static App) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(connection::serve(stream, app));
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Starts one per-core worker thread serving `listener`.
pub fn spawn_per_core_worker(
    index: usize,
    listener: std::net::TcpListener,
    setup: WorkerSetup,
    core: Option<core_affinity::CoreId>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("bareapi-worker-{index}")).spawn(move || {
        if let Some(core) = core
            && !core_affinity::set_for_current(core)
        {
            tracing::warn!(worker = index, core = core.id, "could not pin worker to its core");
        }
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "could not build the worker runtime");
                std::process::exit(1);
            }
        };
        rt.block_on(async move {
            let app = match leak_app(&setup, setup.db.pool_size, setup.db.shared_conns) {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "could not start the worker");
                    std::process::exit(1);
                }
            };
            // Opening the shared connections must not delay accepting: requests that arrive
            // first fill the slots themselves.
            tokio::spawn(app.db.warm_up());
            let listener = TcpListener::from_std(listener).expect("a non-blocking std listener converts");
            accept_loop(listener, app).await;
        });
    })
}

/// Starts the multi-thread runtime serving `listener`; the runtime is returned so the caller
/// keeps it alive.
pub fn start_multi_thread(
    workers: usize,
    listener: std::net::TcpListener,
    setup: WorkerSetup,
) -> Result<tokio::runtime::Runtime, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bareapi-mt")
        .enable_all()
        .build()
        .map_err(|e| format!("building the runtime: {e}"))?;
    // The one pool serves every worker thread: the per-worker sizes times the worker count.
    let app = leak_app(&setup, setup.db.pool_size * workers, setup.db.shared_conns * workers)?;
    let listener = {
        let _guard = rt.enter();
        TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?
    };
    rt.spawn(app.db.warm_up());
    rt.spawn(accept_loop(listener, app));
    Ok(rt)
}
