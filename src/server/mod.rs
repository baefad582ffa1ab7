//! Server start-up as a chain of small named steps ([`run`]): prepare the database
//! (migrations, cache fill) → bind the listeners ([`bind`]) → start workers → wait for the
//! shutdown future → drain.

pub mod connection;
pub mod listener;
pub mod ops_listener;
pub mod runtime;
pub mod timer;
pub mod tls;

use std::sync::Arc;

use crate::app::Shared;
use crate::cache::WorldCache;
use crate::causes::Chain;
use crate::config::{DbConfig, ServerConfig};
use crate::db::{budget, migrate, pool::pg_config};
use crate::metrics::LabelledCounter;
use crate::routes::MetricsOn;
use listener::Listeners;
use runtime::WorkerSetup;

/// Connects one plain client (not pooled) for start-up work. The whole handshake is bounded by
/// the create timeout: tokio-postgres's connect timeout covers only the TCP connect, so a host
/// that accepts and then says nothing would otherwise hang start-up.
async fn connect(cfg: &DbConfig) -> Result<tokio_postgres::Client, String> {
    let pg = pg_config(cfg).map_err(|e| format!("DATABASE_URL: {}", Chain(&e)))?;
    let (client, conn) = tokio::time::timeout(cfg.create_timeout, pg.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("connecting: no answer within {:?}", cfg.create_timeout))?
        .map_err(|e| format!("connecting to the database: {}", Chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %Chain(&e), "start-up connection ended");
        }
    });
    Ok(client)
}

/// `bareapi migrate`: applies pending migrations and returns.
pub fn migrate_only(cfg: &DbConfig) -> Result<(), String> {
    control_runtime()?.block_on(async {
        let mut client = connect(cfg).await?;
        let applied = migrate::run(&mut client).await.map_err(|e| format!("migrating: {e}"))?;
        tracing::info!(applied = applied.len(), "migrations done");
        Ok(())
    })
}

fn control_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))
}

/// Applies migrations (when asked) and fills the world cache. Without migrations an unreachable
/// database is not fatal: database routes answer 503 until it is back.
async fn prepare_database(cfg: &ServerConfig, worlds: &WorldCache) -> Result<(), String> {
    let mut client = match connect(&cfg.db).await {
        Ok(c) => c,
        Err(e) if !cfg.migrate => {
            tracing::warn!(error = %e, "database unreachable at start; serving anyway");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if cfg.connection_budget_check {
        check_connection_budget(cfg, &client).await?;
    }
    if cfg.migrate {
        let applied = migrate::run(&mut client).await.map_err(|e| format!("migrating: {e}"))?;
        tracing::info!(applied = applied.len(), "migrations done");
    }
    match worlds.fill(&client).await {
        Ok(n) => tracing::info!(rows = n, cached = worlds.len(), "world cache filled"),
        Err(e) => tracing::warn!(error = %e, "could not fill the world cache; it fills on demand"),
    }
    Ok(())
}

/// Refuses to start when this process's pools alone could exceed the connections the server
/// accepts; warns when they fit alone but not beside the connections already open.
async fn check_connection_budget(cfg: &ServerConfig, client: &tokio_postgres::Client) -> Result<(), String> {
    let slots = match budget::read(client).await {
        Ok(slots) => slots,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "could not read max_connections; connection budget not checked");
            return Ok(());
        }
    };
    let need = budget::Need { workers: cfg.workers, pool_size: cfg.db.pool_size };
    if let Some(warning) = budget::check(need, slots)? {
        tracing::warn!("{warning}");
    } else {
        tracing::info!(
            needed = need.total(),
            available = slots.available(),
            in_use = slots.in_use,
            "connection budget fits"
        );
    }
    Ok(())
}

/// Hands the memory start-up used and freed (the world cache's rows as they came off the wire,
/// migrations) back to the OS: mimalloc otherwise keeps freed pages of a thread's heap until
/// that thread allocates again, and this thread then only waits for the shutdown signal.
fn release_start_up_memory() {
    // SAFETY: mi_collect only walks and trims mimalloc's own heaps; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Binds the listeners `cfg` asks for (one per worker in per-core mode).
pub fn bind(cfg: &ServerConfig) -> Result<Listeners, String> {
    listener::bind_for(cfg.runtime, cfg.listen, cfg.backlog, cfg.workers)
        .map_err(|e| format!("binding {}: {e}", cfg.listen))
}

/// Prepares the database, binds with `bind` (the binary passes [`bind`]), serves until
/// `shutdown` resolves, then drains (see [`crate::shutdown`]) and returns. The binary passes
/// [`shutdown_signal`]; tests pass their own future and binding.
///
/// The port is bound only once the database is ready: during a restart on the same port
/// (`SO_REUSEPORT`) the kernel sends new connections to every bound listener, so a process
/// still migrating, or about to fail to start, must not hold one yet.
pub fn run(
    cfg: ServerConfig,
    bind: impl FnOnce(&ServerConfig) -> Result<Listeners, String>,
    shutdown: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    // Before the database: a bad certificate or key is a start-up error that names it.
    let reloader = match &cfg.tls {
        Some(files) => {
            let reloader = tls::Reloader::start(files.clone())?;
            tracing::info!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                provider = tls::PROVIDER,
                "TLS on (ALPN h2, http/1.1)"
            );
            Some(reloader)
        }
        None => None,
    };
    let control = control_runtime()?;
    let metrics_on = if cfg.metrics_listen.is_some() { MetricsOn::OwnListener } else { MetricsOn::PublicPort };
    let shared = Arc::new(Shared::new(metrics_on, &cfg.abuse).map_err(|e| e.to_string())?);
    // With TLS, SIGHUP reloads the certificate (installed before the port is bound: a SIGHUP
    // from then on is never the default action, which ends the process).
    let hangups = match &reloader {
        Some(reloader) => {
            shared.metrics.enable_tls();
            let counts = reloader.counts();
            shared.metrics.register_labelled_counter(LabelledCounter {
                name: "bareapi_tls_reloads_total",
                help: "Certificate reloads on SIGHUP, by result (error: the previous certificate kept).",
                label: "result",
                read: Box::new(move || counts.series()),
            });
            let _guard = control.enter();
            let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| format!("SIGHUP handler: {e}"))?;
            Some(hup)
        }
        None => None,
    };
    control.block_on(prepare_database(&cfg, &shared.worlds))?;
    release_start_up_memory();
    let ops = match cfg.metrics_listen {
        Some(at) => {
            let l = control.block_on(tokio::net::TcpListener::bind(at)).map_err(|e| format!("binding {at}: {e}"))?;
            let bound = l.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(metrics_addr = %bound, "metrics and liveness listening");
            Some(l)
        }
        None => None,
    };
    let listeners = bind(&cfg)?;
    let addr = listeners.local_addr().map_err(|e| e.to_string())?;
    let running = start_workers(&cfg, listeners, &shared, reloader.as_ref().map(|r| Arc::clone(r.config())))?;
    let (layout, workers) = match &running {
        Running::PerCore(threads) => ("per-core", threads.len()),
        Running::MultiThread(..) => ("multi-thread", cfg.workers),
    };
    tracing::info!(%addr, workers, runtime = layout, "listening");
    // Without its shutdown signal the server cannot be stopped cleanly: exit with the error.
    // The operations listener (if any) is served here meanwhile, and stops with it.
    // Certificate reloads are done here too.
    control.block_on(async {
        let serving = async {
            match ops {
                Some(l) => ops_listener::serve(l, Arc::clone(&shared), cfg.http.header_read_timeout).await,
                None => std::future::pending().await,
            }
        };
        let reloading = async {
            match (&reloader, hangups) {
                (Some(reloader), Some(hangups)) => reloader.on_sighup(hangups).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = shutdown => r,
            () = serving => Ok(()),
            () = reloading => Ok(()),
        }
    })?;
    tracing::info!(drain_timeout = ?cfg.ops.drain_timeout, "shutdown signal received; draining");
    shared.shutdown.begin();
    running.join();
    tracing::info!("drained; exiting");
    Ok(())
}

/// The workers of either runtime layout, until they have drained.
enum Running {
    PerCore(Vec<std::thread::JoinHandle<()>>),
    MultiThread(tokio::runtime::Runtime, tokio::task::JoinHandle<()>),
}

impl Running {
    /// Waits for every worker to drain (the drain deadline bounds it).
    fn join(self) {
        match self {
            Running::PerCore(threads) => {
                for thread in threads {
                    if thread.join().is_err() {
                        tracing::error!("a worker thread panicked while draining");
                    }
                }
            }
            Running::MultiThread(rt, done) => {
                let _ = rt.block_on(done);
                rt.shutdown_timeout(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Starts the workers serving `listeners`.
fn start_workers(
    cfg: &ServerConfig,
    listeners: Listeners,
    shared: &Arc<Shared>,
    tls: Option<tls::SharedTlsConfig>,
) -> Result<Running, String> {
    let setup = WorkerSetup {
        db: cfg.db.clone(),
        shared: Arc::clone(shared),
        http: cfg.http,
        users: cfg.users,
        ops: cfg.ops,
        tls,
        tls_handshake_concurrency: cfg.tls_handshake_concurrency,
    };
    match listeners {
        Listeners::PerCore(listeners) => {
            let cores = if cfg.pin_cores { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
            let mut threads = Vec::with_capacity(listeners.len());
            for (i, l) in listeners.into_iter().enumerate() {
                let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
                threads.push(
                    runtime::spawn_per_core_worker(i, l, setup.clone(), core)
                        .map_err(|e| format!("starting worker {i}: {e}"))?,
                );
            }
            Ok(Running::PerCore(threads))
        }
        Listeners::MultiThread(l) => {
            let (rt, done) = runtime::start_multi_thread(cfg.workers, l, setup)?;
            Ok(Running::MultiThread(rt, done))
        }
    }
}

/// Resolves on SIGINT or SIGTERM; an error if their handlers cannot be installed.
pub async fn shutdown_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("SIGINT handler: {e}")),
        _ = term.recv() => Ok(()),
    }
}
