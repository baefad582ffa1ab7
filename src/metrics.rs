//! Prometheus metrics: request counts and a duration histogram by method, matched route
//! template and status class; in-flight requests; open and total connections; TLS handshakes
//! (with TLS on); pool state; and process-wide gauges other modules register (password hashes
//! running).
//!
//! Recording one request takes no lock, no hash lookup and no allocation: every series has a
//! fixed slot in a flat array of atomics, found from indexes the router already computed (the
//! template's position) and two small `match`es (method, status class). Each worker records into
//! its own [`Shard`] (in per-core mode nothing is shared between threads); a scrape adds the
//! shards up and renders the text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Methods with their own label; anything else is counted as `OTHER`.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Histogram bucket upper bounds in microseconds (rendered in seconds): 50 µs to 10 s.
const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];
/// Buckets per series: the bounds above and +Inf.
const SLOTS: usize = BUCKETS_US.len() + 1;

/// The protocol ALPN chose for a completed TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProtocol {
    H2 = 0,
    Http1 = 1,
}

const TLS_PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];
/// Completed handshakes: a full one (key exchange and signature) or a resumed session.
const TLS_KINDS: [&str; 2] = ["full", "resumed"];

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// Not done within the header timeout (a silent or stalled client, or one that waited too
    /// long for a handshake slot).
    Timeout = 0,
    /// The client closed the connection before the handshake was done.
    Eof = 1,
    /// The client refused the handshake with an alert (it does not trust the certificate, or
    /// offers nothing the server accepts).
    Alert = 2,
    /// Not TLS, or TLS the server refuses (plain HTTP to the TLS port, no common version or
    /// cipher suite, a malformed message).
    Protocol = 3,
    /// The socket failed (a reset).
    Io = 4,
}

const TLS_FAILURES: [&str; 5] = ["timeout", "eof", "alert", "protocol", "io"];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn class_index(status: u16) -> usize {
    (usize::from(status / 100)).clamp(1, 5) - 1
}

/// Who writes a shard. A per-core worker's shard is written only by that worker's thread, so
/// an add is a plain load and store, without the locked instruction (and its pipeline stall) of
/// an atomic add; the multi-thread runtime's one shard is written by every thread and needs
/// atomic adds. Either way a scrape from another thread reads whole values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    One,
    Many,
}

/// One worker's counters.
pub struct Shard {
    writers: Writers,
    /// `[route][method][class]`
    requests: Box<[AtomicU64]>,
    /// `[route][method][class][bucket]`, not cumulative (summed at scrape).
    buckets: Box<[AtomicU64]>,
    /// `[route][method][class]`, microseconds.
    duration_sum_us: Box<[AtomicU64]>,
    in_flight: AtomicI64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    /// `[protocol][kind]`
    tls_handshakes: [AtomicU64; 4],
    /// `[reason]`
    tls_failures: [AtomicU64; 5],
    /// Handshakes holding one of the worker's handshake slots.
    tls_in_progress: AtomicI64,
    /// Handshakes whose ClientHello arrived, waiting for a slot.
    tls_waiting: AtomicI64,
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Shard {
    fn new(routes: usize, writers: Writers) -> Shard {
        let series = routes * METHODS.len() * CLASSES.len();
        Shard {
            writers,
            requests: zeroed(series),
            buckets: zeroed(series * SLOTS),
            duration_sum_us: zeroed(series),
            in_flight: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            tls_handshakes: Default::default(),
            tls_failures: Default::default(),
            tls_in_progress: AtomicI64::new(0),
            tls_waiting: AtomicI64::new(0),
        }
    }

    #[inline]
    fn add(&self, cell: &AtomicU64, n: u64) {
        match self.writers {
            Writers::One => cell.store(cell.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed),
            Writers::Many => {
                cell.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Adds `n` to a gauge; its value before.
    #[inline]
    fn add_gauge(&self, cell: &AtomicI64, n: i64) -> i64 {
        match self.writers {
            Writers::One => {
                let before = cell.load(Ordering::Relaxed);
                cell.store(before.wrapping_add(n), Ordering::Relaxed);
                before
            }
            Writers::Many => cell.fetch_add(n, Ordering::Relaxed),
        }
    }

    /// Records one answered request. `route` is the router's template index (or the
    /// unmatched slot, [`Metrics::unmatched`]).
    pub fn record(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        let series = (route * METHODS.len() + method_index(method)) * CLASSES.len() + class_index(status);
        let Some(count) = self.requests.get(series) else { return };
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(BUCKETS_US.len());
        self.add(count, 1);
        self.add(&self.buckets[series * SLOTS + bucket], 1);
        self.add(&self.duration_sum_us[series], us);
    }

    /// A request is being answered (the in-flight gauge).
    pub fn request_started(&self) {
        self.add_gauge(&self.in_flight, 1);
    }

    /// A request counted by [`Shard::request_started`] ended, answered or dropped.
    pub fn request_ended(&self) {
        self.add_gauge(&self.in_flight, -1);
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.add(&self.connections_total, 1);
        self.add_gauge(&self.connections_open, 1);
    }

    /// A client connection ended; true when it was the shard's last open one.
    pub fn connection_closed(&self) -> bool {
        self.add_gauge(&self.connections_open, -1) == 1
    }

    /// Connections open now.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// A TLS handshake completed.
    pub fn tls_handshake_done(&self, protocol: TlsProtocol, resumed: bool) {
        self.add(&self.tls_handshakes[protocol as usize * TLS_KINDS.len() + usize::from(resumed)], 1);
    }

    /// A TLS handshake failed.
    pub fn tls_handshake_failed(&self, reason: TlsFailure) {
        self.add(&self.tls_failures[reason as usize], 1);
    }

    /// A handshake took a slot (+1) or gave it back (-1).
    pub fn tls_in_progress(&self, n: i64) {
        self.add_gauge(&self.tls_in_progress, n);
    }

    /// A handshake started (+1) or stopped (-1) waiting for a slot.
    pub fn tls_waiting(&self, n: i64) {
        self.add_gauge(&self.tls_waiting, n);
    }
}

/// Pool figures of one worker's database access, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    /// Pipelined statements in flight on the worker's connections (`db::in_flight`).
    pub statements_in_flight: usize,
}

/// Reads a worker's pool figures at scrape time.
pub type PoolProbe = Box<dyn Fn() -> PoolFigures + Send + Sync>;

/// Shared database connections retired for not answering (see `db::pool`), over the process.
/// Counted where it happens, which is rare, rather than read from each pool at scrape time.
pub static DB_CONNECTIONS_RETIRED: AtomicU64 = AtomicU64::new(0);

/// A process-wide gauge, read at scrape time.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub read: Box<dyn Fn() -> i64 + Send + Sync>,
}

/// A process-wide counter, read at scrape time.
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub read: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// A process-wide counter with one label, a series per label value, read at scrape time.
pub struct LabelledCounter {
    pub name: &'static str,
    pub help: &'static str,
    pub label: &'static str,
    /// Every series: the label's value and the count.
    pub read: Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>,
}

/// All shards of the process and the labels they are keyed by.
pub struct Metrics {
    /// Route labels by template index; the last one is for requests no route matched.
    routes: Vec<&'static str>,
    /// Every shard, registered at worker start; locked only then and at scrape.
    shards: Mutex<Vec<Arc<Shard>>>,
    pools: Mutex<Vec<PoolProbe>>,
    gauges: Mutex<Vec<Gauge>>,
    counters: Mutex<Vec<Counter>>,
    labelled: Mutex<Vec<LabelledCounter>>,
    /// Set when the server speaks TLS: the handshake series are rendered then.
    tls: AtomicBool,
}

impl Metrics {
    /// `templates` in the router's order; the [`UNMATCHED`] slot is added after them.
    pub fn new(templates: Vec<&'static str>) -> Metrics {
        let mut routes = templates;
        routes.push(UNMATCHED);
        Metrics {
            routes,
            shards: Mutex::new(Vec::new()),
            pools: Mutex::new(Vec::new()),
            gauges: Mutex::new(Vec::new()),
            counters: Mutex::new(Vec::new()),
            labelled: Mutex::new(Vec::new()),
            tls: AtomicBool::new(false),
        }
    }

    /// Renders the TLS handshake series from now on.
    pub fn enable_tls(&self) {
        self.tls.store(true, Ordering::Relaxed);
    }

    /// The route slot of requests no route matched.
    pub fn unmatched(&self) -> usize {
        self.routes.len() - 1
    }

    /// A new shard for one worker, written by `writers`.
    pub fn shard(&self, writers: Writers) -> Arc<Shard> {
        let shard = Arc::new(Shard::new(self.routes.len(), writers));
        self.shards.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&shard));
        shard
    }

    pub fn register_pool(&self, probe: PoolProbe) {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).push(probe);
    }

    pub fn register_gauge(&self, gauge: Gauge) {
        self.gauges.lock().unwrap_or_else(|p| p.into_inner()).push(gauge);
    }

    pub fn register_counter(&self, counter: Counter) {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).push(counter);
    }

    pub fn register_labelled_counter(&self, counter: LabelledCounter) {
        self.labelled.lock().unwrap_or_else(|p| p.into_inner()).push(counter);
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::with_capacity(24 * 1024);
        self.render_requests(&shards, &mut out);
        render_connection_gauges(&shards, &mut out);
        if self.tls.load(Ordering::Relaxed) {
            render_tls(&shards, &mut out);
        }
        self.render_pools(&mut out);
        let _ = write!(
            out,
            "# HELP bareapi_db_connections_retired_total Shared database connections retired because they stopped answering.\n# TYPE bareapi_db_connections_retired_total counter\nbareapi_db_connections_retired_total {}\n",
            DB_CONNECTIONS_RETIRED.load(Ordering::Relaxed)
        );
        for g in self.gauges.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = write!(out, "# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", g.name, g.help, (g.read)());
        }
        for c in self.counters.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = write!(out, "# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", c.name, c.help, (c.read)());
        }
        for c in self.labelled.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = write!(out, "# HELP {0} {1}\n# TYPE {0} counter\n", c.name, c.help);
            for (value, count) in (c.read)() {
                let _ = writeln!(out, "{}{{{}=\"{}\"}} {count}", c.name, c.label, escape(value));
            }
        }
        let _ = write!(
            out,
            "# HELP bareapi_build_info Build information.\n# TYPE bareapi_build_info gauge\nbareapi_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        out
    }

    /// The request counter and the duration histogram, one series per (route, method, status
    /// class) that has seen a request.
    fn render_requests(&self, shards: &[Arc<Shard>], out: &mut String) {
        let sum = |f: &dyn Fn(&Shard) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
        out.push_str(
            "# HELP bareapi_http_requests_total Requests answered, by method, route template and status class.\n",
        );
        out.push_str("# TYPE bareapi_http_requests_total counter\n");
        let mut hist = String::with_capacity(16 * 1024);
        hist.push_str("# HELP bareapi_http_request_duration_seconds Time from request head to response, by method, route template and status class.\n");
        hist.push_str("# TYPE bareapi_http_request_duration_seconds histogram\n");
        for series in 0..self.routes.len() * METHODS.len() * CLASSES.len() {
            let count = sum(&|s| s.requests[series].load(Ordering::Relaxed));
            if count == 0 {
                continue;
            }
            let labels = self.labels(series);
            let _ = writeln!(out, "bareapi_http_requests_total{{{labels}}} {count}");
            let mut cumulative = 0;
            for (b, bound) in BUCKETS_US.iter().enumerate() {
                cumulative += sum(&|s| s.buckets[series * SLOTS + b].load(Ordering::Relaxed));
                let _ = writeln!(
                    hist,
                    "bareapi_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    *bound as f64 / 1e6
                );
            }
            let _ = writeln!(hist, "bareapi_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum_us = sum(&|s| s.duration_sum_us[series].load(Ordering::Relaxed));
            let _ = writeln!(hist, "bareapi_http_request_duration_seconds_sum{{{labels}}} {}", sum_us as f64 / 1e6);
            let _ = writeln!(hist, "bareapi_http_request_duration_seconds_count{{{labels}}} {count}");
        }
        out.push_str(&hist);
    }

    /// The label set of series index `series` (`[route][method][class]`).
    fn labels(&self, series: usize) -> String {
        let class = series % CLASSES.len();
        let method = (series / CLASSES.len()) % METHODS.len();
        let route = series / (CLASSES.len() * METHODS.len());
        format!("method=\"{}\",route=\"{}\",status=\"{}\"", METHODS[method], escape(self.routes[route]), CLASSES[class])
    }

    /// One gauge per pool figure, a series per worker's pool.
    fn render_pools(&self, out: &mut String) {
        let pools: Vec<PoolFigures> =
            self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|p| p()).collect();
        for (name, help, get) in [
            (
                "bareapi_db_pool_max_size",
                "Connections the pool may open.",
                (|f: &PoolFigures| f.max_size) as fn(&PoolFigures) -> usize,
            ),
            ("bareapi_db_pool_size", "Connections the pool holds.", |f| f.size),
            ("bareapi_db_pool_available", "Idle connections in the pool.", |f| f.available),
            ("bareapi_db_pool_waiting", "Requests waiting for a pool connection.", |f| f.waiting),
            (
                "bareapi_db_statements_in_flight",
                "Pipelined row reads (/queries, /updates) in flight on the worker's connections.",
                |f| f.statements_in_flight,
            ),
        ] {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for (worker, figures) in pools.iter().enumerate() {
                let _ = writeln!(out, "{name}{{pool=\"{worker}\"}} {}", get(figures));
            }
        }
    }
}

/// In-flight requests and connections, summed over the shards.
fn render_connection_gauges(shards: &[Arc<Shard>], out: &mut String) {
    let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: i64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    let in_flight: i64 = shards.iter().map(|s| s.in_flight.load(Ordering::Relaxed)).sum();
    gauge(out, "bareapi_http_requests_in_flight", "Requests being answered.", "gauge", in_flight);
    let open: i64 = shards.iter().map(|s| s.connections_open.load(Ordering::Relaxed)).sum();
    gauge(out, "bareapi_http_connections_open", "Client connections open.", "gauge", open);
    let total: u64 = shards.iter().map(|s| s.connections_total.load(Ordering::Relaxed)).sum();
    gauge(out, "bareapi_http_connections_total", "Client connections accepted.", "counter", total as i64);
}

/// TLS handshakes completed (by protocol and kind), failed (by reason), holding a slot and
/// waiting for one, summed over the shards.
fn render_tls(shards: &[Arc<Shard>], out: &mut String) {
    out.push_str("# HELP bareapi_tls_handshakes_total TLS handshakes completed, by negotiated protocol and kind (full or resumed).\n# TYPE bareapi_tls_handshakes_total counter\n");
    for (p, protocol) in TLS_PROTOCOLS.iter().enumerate() {
        for (k, kind) in TLS_KINDS.iter().enumerate() {
            let i = p * TLS_KINDS.len() + k;
            let n: u64 = shards.iter().map(|s| s.tls_handshakes[i].load(Ordering::Relaxed)).sum();
            let _ = writeln!(out, "bareapi_tls_handshakes_total{{protocol=\"{protocol}\",kind=\"{kind}\"}} {n}");
        }
    }
    out.push_str("# HELP bareapi_tls_handshake_failures_total TLS handshakes that failed, by reason.\n# TYPE bareapi_tls_handshake_failures_total counter\n");
    for (i, reason) in TLS_FAILURES.iter().enumerate() {
        let n: u64 = shards.iter().map(|s| s.tls_failures[i].load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "bareapi_tls_handshake_failures_total{{reason=\"{reason}\"}} {n}");
    }
    let in_progress: i64 = shards.iter().map(|s| s.tls_in_progress.load(Ordering::Relaxed)).sum();
    let waiting: i64 = shards.iter().map(|s| s.tls_waiting.load(Ordering::Relaxed)).sum();
    let _ = write!(
        out,
        "# HELP bareapi_tls_handshakes_in_progress TLS handshakes holding a handshake slot (at most --tls-handshake-concurrency per worker).\n# TYPE bareapi_tls_handshakes_in_progress gauge\nbareapi_tls_handshakes_in_progress {in_progress}\n\
         # HELP bareapi_tls_handshakes_waiting TLS connections whose ClientHello arrived, waiting for a handshake slot.\n# TYPE bareapi_tls_handshakes_waiting gauge\nbareapi_tls_handshakes_waiting {waiting}\n"
    );
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_their_series_and_buckets() {
        let m = Metrics::new(vec!["/a", "/b/{id}"]);
        let s1 = m.shard(Writers::One);
        let s2 = m.shard(Writers::Many);
        s1.record(0, &Method::GET, 200, Duration::from_micros(80));
        s2.record(0, &Method::GET, 204, Duration::from_micros(3_000));
        s1.record(1, &Method::DELETE, 404, Duration::from_secs(60));
        s1.record(m.unmatched(), &Method::from_bytes(b"BREW").unwrap(), 404, Duration::ZERO);
        let text = m.render();
        assert!(text.contains("bareapi_http_requests_total{method=\"GET\",route=\"/a\",status=\"2xx\"} 2\n"), "{text}");
        assert!(text.contains("route=\"/a\",status=\"2xx\",le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("route=\"/a\",status=\"2xx\",le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("route=\"/b/{id}\",status=\"4xx\",le=\"10\"} 0\n"), "{text}");
        assert!(text.contains("route=\"/b/{id}\",status=\"4xx\",le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("method=\"OTHER\",route=\"<unmatched>\",status=\"4xx\"} 1"), "{text}");
        assert!(text.contains(
            "bareapi_http_request_duration_seconds_sum{method=\"GET\",route=\"/a\",status=\"2xx\"} 0.00308\n"
        ));
        assert!(!text.contains("route=\"/b/{id}\",status=\"2xx\""), "series never recorded are not rendered");
    }

    #[test]
    fn registered_gauges_are_read_at_scrape_time() {
        let m = Metrics::new(vec!["/a"]);
        let value = Arc::new(AtomicI64::new(3));
        let read = Arc::clone(&value);
        m.register_gauge(Gauge {
            name: "bareapi_things",
            help: "Things.",
            read: Box::new(move || read.load(Ordering::Relaxed)),
        });
        assert!(m.render().contains("# TYPE bareapi_things gauge\nbareapi_things 3\n"));
        value.store(5, Ordering::Relaxed);
        assert!(m.render().contains("\nbareapi_things 5\n"));
    }

    #[test]
    fn counters_render_a_series_per_value() {
        let m = Metrics::new(vec!["/a"]);
        m.register_counter(Counter { name: "bareapi_things_total", help: "Things.", read: Box::new(|| 7) });
        assert!(m.render().contains("# TYPE bareapi_things_total counter\nbareapi_things_total 7\n"));
        m.register_labelled_counter(LabelledCounter {
            name: "bareapi_refused_total",
            help: "Refusals.",
            label: "reason",
            read: Box::new(|| vec![("a", 2), ("b", 0)]),
        });
        let text = m.render();
        assert!(
            text.contains("# TYPE bareapi_refused_total counter\nbareapi_refused_total{reason=\"a\"} 2\nbareapi_refused_total{reason=\"b\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn retired_database_connections_are_a_counter() {
        let before = Metrics::new(vec!["/a"]).render();
        assert!(before.contains("# TYPE bareapi_db_connections_retired_total counter\n"), "{before}");
        let seen = |text: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with("bareapi_db_connections_retired_total ")).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        DB_CONNECTIONS_RETIRED.fetch_add(1, Ordering::Relaxed);
        assert!(seen(&Metrics::new(vec!["/a"]).render()) > seen(&before));
    }

    #[test]
    fn tls_series_are_rendered_only_with_tls_on() {
        let m = Metrics::new(vec!["/a"]);
        let s = m.shard(Writers::One);
        s.tls_handshake_done(TlsProtocol::H2, false);
        s.tls_handshake_done(TlsProtocol::Http1, true);
        s.tls_handshake_failed(TlsFailure::Alert);
        s.tls_in_progress(1);
        assert!(!m.render().contains("bareapi_tls_"), "cleartext: no TLS series");
        m.enable_tls();
        let text = m.render();
        for line in [
            "bareapi_tls_handshakes_total{protocol=\"h2\",kind=\"full\"} 1\n",
            "bareapi_tls_handshakes_total{protocol=\"h2\",kind=\"resumed\"} 0\n",
            "bareapi_tls_handshakes_total{protocol=\"http/1.1\",kind=\"resumed\"} 1\n",
            "bareapi_tls_handshake_failures_total{reason=\"alert\"} 1\n",
            "bareapi_tls_handshake_failures_total{reason=\"timeout\"} 0\n",
            "\nbareapi_tls_handshakes_in_progress 1\n",
            "\nbareapi_tls_handshakes_waiting 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn status_classes_cover_odd_codes() {
        assert_eq!(class_index(100), 0);
        assert_eq!(class_index(599), 4);
        assert_eq!(class_index(999), 4);
        assert_eq!(class_index(0), 0);
    }
}
