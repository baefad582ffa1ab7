//! The two runtime layouts. Per-core: one OS thread per worker, each running a current-thread
//! tokio runtime with its own listener and its own [`App`]. Multi-thread: one work-stealing
//! runtime, one listener, one [`App`]. Both run the same accept loop, service and drain.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::app::{App, HttpSettings, OpsSettings, Shared, UsersSettings};
use crate::config::DbConfig;
use crate::db::Db;
use crate::metrics::PoolFigures;
use crate::server::connection;
use crate::server::shutdown::{Phase, reached};

/// What every worker needs to build its [`App`].
#[derive(Clone)]
pub struct WorkerSetup {
    pub db: DbConfig,
    pub shared: Arc<Shared>,
    pub http: HttpSettings,
    pub users: UsersSettings,
    pub ops: OpsSettings,
}

/// Builds an [`App`] for the process's lifetime. Leaked on purpose: connection tasks borrow it
/// as `&'static` instead of cloning an `Arc` per request, and it lives until the process exits.
fn leak_app(
    setup: &WorkerSetup,
    pool_size: usize,
    shared_conns: usize,
    ops: OpsSettings,
) -> Result<&'static App, String> {
    let db = Db::new(&setup.db, pool_size, shared_conns)?;
    let app = App::new(db, Arc::clone(&setup.shared), setup.http, setup.users, ops).map_err(|e| e.to_string())?;
    let app: &'static App = Box::leak(Box::new(app));
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
    Ok(app)
}

/// Accepts connections until shutdown begins, serving each on its own task; at most
/// `ops.max_connections` at once (the rest wait in the listen backlog). Then takes what is
/// still queued (see [`empty_backlog`]) and closes the listener.
pub async fn accept_loop(listener: TcpListener, app: &'static App) {
    app.shared.shutdown.listener_opened();
    let mut shutdown = app.shared.shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&app.connection_permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = reached(&mut shutdown, Phase::Closing) => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection::serve(stream, app, Some(permit)));
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
    empty_backlog(listener, app);
    app.shared.shutdown.listener_closed();
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
fn empty_backlog(listener: TcpListener, app: &'static App) {
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
            Ok((stream, _peer)) => {
                match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                    Ok(stream) => {
                        taken += 1;
                        let permit = Arc::clone(&app.connection_permits).try_acquire_owned().ok();
                        tokio::spawn(connection::serve(stream, app, permit));
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

/// After the accept loop has stopped: waits for this app's connections to finish, up to the
/// drain deadline, then closes the pool. Connections still open are dropped with the runtime.
async fn drain(app: &'static App) {
    let deadline = Instant::now() + app.ops.drain_timeout;
    while app.shard.connections_open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = app.shard.connections_open.load(Ordering::Relaxed);
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
            let app = match leak_app(&setup, setup.db.pool_size, setup.db.shared_conns, setup.ops) {
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
            drain(app).await;
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
    // The one pool and connection limit serve every worker thread: per-worker values times
    // the worker count.
    let ops = OpsSettings { max_connections: setup.ops.max_connections * workers, ..setup.ops };
    let app = leak_app(&setup, setup.db.pool_size * workers, setup.db.shared_conns * workers, ops)?;
    let listener = {
        let _guard = rt.enter();
        TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?
    };
    rt.spawn(app.db.warm_up());
    let done = rt.spawn(async move {
        accept_loop(listener, app).await;
        drain(app).await;
    });
    Ok((rt, done))
}
