//! The two runtime layouts. Per-core: one OS thread per worker, each running a current-thread
//! tokio runtime with its own listener and its own [`Worker`]. Multi-thread: one work-stealing
//! runtime, one listener, one [`Worker`]. Both run the same accept loop, service and drain.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::app::{App, Shared};
use crate::config::{DbConfig, HttpSettings, OpsSettings, UsersSettings};
use crate::db::Db;
use crate::metrics::{PoolFigures, Writers};
use crate::server::connection::{self, Open, Protocols};
use crate::server::tls::SharedTlsConfig;
use crate::shutdown::{Phase, reached};

/// What every worker needs to build its [`Worker`].
#[derive(Clone)]
pub struct WorkerSetup {
    pub db: DbConfig,
    pub shared: Arc<Shared>,
    pub http: HttpSettings,
    pub users: UsersSettings,
    pub ops: OpsSettings,
    /// The TLS configuration every worker handshakes with (`None`: cleartext).
    pub tls: Option<SharedTlsConfig>,
    /// TLS handshakes one worker runs at once.
    pub tls_handshake_concurrency: usize,
}

/// One worker: the [`App`] its requests run against and what serving connections takes.
pub struct Worker {
    pub app: App,
    pub protocols: Protocols,
    /// Bounds the connections this worker serves at once (`ops.max_connections`).
    pub connection_permits: Arc<Semaphore>,
    /// Bounds the TLS handshakes this worker runs at once (see `connection::serve_tls`).
    pub handshake_permits: Semaphore,
    /// Woken when the worker's last open connection ends; the drain waits on it.
    pub idle: Notify,
}

/// Builds a [`Worker`] for the process's lifetime. Leaked on purpose: connection tasks borrow
/// it as `&'static` instead of cloning an `Arc` per request, and it lives until the process
/// exits.
fn leak_worker(
    setup: &WorkerSetup,
    pool_size: usize,
    shared_conns: usize,
    ops: OpsSettings,
    handshakes: usize,
    writers: Writers,
) -> Result<&'static Worker, String> {
    let db = Db::new(&setup.db, pool_size, shared_conns)?;
    let worker: &'static Worker = Box::leak(Box::new(Worker {
        app: App::new(db, Arc::clone(&setup.shared), setup.users, ops, writers),
        protocols: Protocols::with_tls(&setup.http, setup.tls.clone()),
        connection_permits: Arc::new(Semaphore::new(ops.max_connections)),
        handshake_permits: Semaphore::new(handshakes),
        idle: Notify::new(),
    }));
    let app = &worker.app;
    setup.shared.metrics.register_pool(Box::new(move || {
        let s = app.db.pool_status();
        PoolFigures {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
            statements_in_flight: app.db.statements().in_flight(),
        }
    }));
    Ok(worker)
}

/// Accepts connections until shutdown begins, serving each on its own task; at most
/// `ops.max_connections` at once (the rest wait in the listen backlog). Then takes what is
/// still queued (see [`empty_backlog`]) and closes the listener.
pub async fn accept_loop(listener: TcpListener, worker: &'static Worker) {
    let shutdown_signal = &worker.app.shared.shutdown;
    shutdown_signal.listener_opened();
    let mut shutdown = shutdown_signal.subscribe();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&worker.connection_permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = reached(&mut shutdown, Phase::Closing) => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(connection::serve(stream, peer, Open::new(worker), Some(permit)));
                }
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = reached(&mut shutdown, Phase::Closing) => break,
        }
    }
    empty_backlog(listener, worker);
    shutdown_signal.listener_closed();
}

/// Accepts, without waiting, every connection already queued on the listener, then closes it.
///
/// The kernel resets connections still in a listener's accept queue when it is closed, and
/// during a restart on the same port (`SO_REUSEPORT`) it keeps handing this listener its share
/// of new connections until then. Serving those (each answered with `Connection: close`)
/// leaves only the microseconds between the last accept and the close; on Linux 5.14+ the
/// sysctl `net.ipv4.tcp_migrate_req = 1` closes that gap too, by moving queued connections to
/// another listener in the group. The connection limit is not applied here: the backlog is
/// bounded, and refusing now would lose those clients.
fn empty_backlog(listener: TcpListener, worker: &'static Worker) {
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            // The listener is closed all the same.
            tracing::warn!(error = %e, "could not take the listener's backlog");
            return;
        }
    };
    let mut taken = 0usize;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                    Ok(stream) => {
                        taken += 1;
                        let permit = Arc::clone(&worker.connection_permits).try_acquire_owned().ok();
                        tokio::spawn(connection::serve(stream, peer, Open::new(worker), permit));
                    }
                    Err(e) => tracing::warn!(error = %e, "could not serve a connection from the backlog"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed while taking the backlog");
                break;
            }
        }
    }
    drop(listener);
    if taken > 0 {
        tracing::info!(connections = taken, "served connections still queued at shutdown");
    }
}

/// After the accept loop has stopped: waits for this worker's connections to finish, up to the
/// drain deadline (woken by the last one's end), then closes the pool. Connections still open
/// are dropped with the runtime.
async fn drain(worker: &'static Worker) {
    let app = &worker.app;
    let deadline = tokio::time::Instant::now() + app.ops.drain_timeout;
    loop {
        // Registered before the count is read, so the last connection's wake-up is not missed.
        let idle = worker.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        if app.shard.connections_open() <= 0 || tokio::time::timeout_at(deadline, idle).await.is_err() {
            break;
        }
    }
    let left = app.shard.connections_open();
    if left > 0 {
        tracing::warn!(connections = left, "drain deadline reached; closing the rest");
    }
    app.db.close();
}

/// Starts one per-core worker thread serving `listener`; the thread ends once drained.
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
            let worker = match leak_worker(
                &setup,
                setup.db.pool_size,
                setup.db.shared_conns,
                setup.ops,
                setup.tls_handshake_concurrency,
                Writers::One,
            ) {
                Ok(worker) => worker,
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "could not start the worker");
                    std::process::exit(1);
                }
            };
            // Opening the shared connections must not delay accepting: requests that arrive
            // first fill the slots themselves.
            tokio::spawn(worker.app.db.warm_up());
            worker.app.start_session_sweeper();
            let listener = TcpListener::from_std(listener).expect("a non-blocking std listener converts");
            accept_loop(listener, worker).await;
            drain(worker).await;
        });
        // Dropping the runtime here cancels whatever outlived the drain deadline.
    })
}

/// Starts the multi-thread runtime serving `listener`. Returns the runtime and a handle that
/// finishes once the server has drained after shutdown began.
pub fn start_multi_thread(
    workers: usize,
    listener: std::net::TcpListener,
    setup: WorkerSetup,
) -> Result<(tokio::runtime::Runtime, tokio::task::JoinHandle<()>), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bareapi-mt")
        .enable_all()
        .build()
        .map_err(|e| format!("building the runtime: {e}"))?;
    // The one pool, connection limit and handshake bound serve every worker thread: per-worker
    // values times the worker count.
    let ops = OpsSettings { max_connections: setup.ops.max_connections * workers, ..setup.ops };
    let worker = leak_worker(
        &setup,
        setup.db.pool_size * workers,
        setup.db.shared_conns * workers,
        ops,
        setup.tls_handshake_concurrency * workers,
        Writers::Many,
    )?;
    let listener = {
        let _guard = rt.enter();
        TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?
    };
    rt.spawn(worker.app.db.warm_up());
    let done = rt.spawn(async move {
        worker.app.start_session_sweeper();
        accept_loop(listener, worker).await;
        drain(worker).await;
    });
    Ok((rt, done))
}
