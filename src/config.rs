//! Configuration: command-line flags with environment fallbacks, grouped per subsystem.
//!
//! Every default is a named constant with the reason for its value. The binary parses a [`Cli`];
//! library code only ever sees the per-subsystem structs ([`ServerConfig`], [`DbConfig`]).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::client_ip::{Cidr, ForwardedHeader, TrustedProxies};

/// Default listen address: all interfaces, the port TechEmpower tooling expects.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Listen backlog per listener. The kernel caps it at `net.core.somaxconn` (4096 on current
/// kernels); 4096 lets a burst of thousands of connections queue instead of being dropped.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Connections each worker's pool may open. The pool also serves the rare request that cannot
/// use a shared connection (a broken one being replaced), so it is larger than the shared set.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// Long-lived connections each worker shares between all of its in-flight requests.
/// tokio-postgres pipelines concurrent queries on one connection, so a few are enough to keep
/// one PostgreSQL backend per connection busy; more only adds backend context switches, fewer
/// starves the many-statement routes (BENCHMARKS.md, "Behind the defaults").
pub const DEFAULT_SHARED_CONNS: usize = 3;

/// How long a request waits for a pool connection before answering 503.
pub const DEFAULT_POOL_WAIT_MS: u64 = 2_000;
/// How long creating one connection (TCP + startup + auth) may take.
/// Preparing the statements on a new connection gets the same time again (`db::pool`).
pub const DEFAULT_POOL_CREATE_MS: u64 = 2_000;
/// How long the pool's health check of an idle connection may take.
/// Also how often a shared connection in use is probed, and how long its probe may take before
/// the connection is retired as wedged (`db::pool`): 1 s, so that a stalled socket costs
/// requests at most about two seconds, and well above the few milliseconds a probe waits
/// behind the statements pipelined ahead of it even under benchmark load.
pub const DEFAULT_POOL_RECYCLE_MS: u64 = 1_000;

/// A slow client must send its request headers within this time or the connection is closed;
/// an idle kept-alive connection is closed after it too. 4 s, so that a stalled client is cut
/// off within 5 s of connecting even with timer and scheduling slack.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 4_000;

/// Largest single header value. A bigger one is refused with 431: no legitimate client of this
/// API sends more (the largest is a bearer token), and every byte is memory per connection.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request head (request line + all headers), refused with 431 past it. Larger than one
/// header so that a long query string reaches the router and gets its precise 400.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers per request (hyper's own default, which keeps header parsing on the stack).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
/// RFC 9113 recommends no fewer than 100, so as not to limit parallelism; no more, because a
/// connection can then pin this many request bodies of up to `--max-body-bytes` at once, where
/// an HTTP/1.1 connection pins one. A client opening more is told to wait (compliant clients
/// queue) or has the extra streams refused with REFUSED_STREAM.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// A handler running longer than this answers 503: the client has likely given up already.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Connections one worker serves at once. Each costs a task and buffers (a few KiB); past the
/// limit, new connections wait in the kernel backlog instead of growing memory without bound.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// TLS handshakes one worker runs at once (from the ClientHello to the end of the handshake);
/// more wait for a slot within the header timeout. A full handshake costs the server about
/// 0.1-0.3 ms of CPU (key exchange and an ECDSA signature), so 64 waiting behind each other
/// delay a request already being served by at most some 10-20 ms; and a few dozen in flight
/// per core are plenty for a legitimate burst, as a handshake takes the client one round trip.
pub const DEFAULT_TLS_HANDSHAKE_CONCURRENCY: usize = 64;
/// How long shutdown waits for in-flight requests before closing what is left.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;

/// Largest request body accepted, in bytes. A users API body is a few hundred bytes; 1 MiB
/// leaves room for batch bodies while bounding the memory one request can pin.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Largest users-API request body, in bytes: what its largest valid body needs. That is
/// under 6 KiB even with every character `\u`-escaped (an email of 254 bytes, two passwords of
/// 128 characters and a name of 100, astral characters as 12-byte surrogate pairs), so 8 KiB
/// refuses nothing valid, and bounds what one request can make the server parse and answer.
pub const DEFAULT_USERS_MAX_BODY_BYTES: usize = 8 * 1024;

/// Session tokens live a day unless revoked.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 86_400;

/// Expired and revoked sessions are deleted every five minutes: often enough that the table
/// holds little more than the live sessions, rarely enough that the sweep's scan of the table
/// costs nothing that shows.
pub const DEFAULT_SESSION_SWEEP_INTERVAL_SECS: u64 = 300;

/// Failed logins one email may have within the window before its logins are refused (429):
/// enough for a person who mistypes, far too few to guess a password. An attempt counts as it
/// starts, a success clears the count.
pub const DEFAULT_LOGIN_FAILURES_MAX: u32 = 10;
/// The failed-login window, counted from the first failure: 15 minutes, the lock-out a person
/// can wait out and a guesser cannot use (10 guesses per quarter hour).
pub const DEFAULT_LOGIN_FAILURES_WINDOW_SECS: u64 = 900;
/// Logins per client address: a burst of 20, then 30 a minute. A person logs in a few times a
/// day; an office behind one NAT address still fits; a password sprayer gets 43 200 a day per
/// address instead of thousands a second.
pub const DEFAULT_LOGIN_RATE_PER_MINUTE: u32 = 30;
pub const DEFAULT_LOGIN_BURST: u32 = 20;
/// Signups per client address: a burst of 20, then 5 a minute. Signup answers 409 for a taken
/// email, so each signup tests one address; this bounds how fast one client can test them
/// (7 200 a day per address instead of hundreds a second). The burst lets a family or an
/// office sign up together, and the load-test suite create its 20 users from one address.
pub const DEFAULT_SIGNUP_RATE_PER_MINUTE: u32 = 5;
pub const DEFAULT_SIGNUP_BURST: u32 = 20;
/// Keys (emails, addresses) each limiter remembers. An entry is well under 100 bytes, so each
/// limiter stays under about 10 MiB however many distinct keys a flood sends.
pub const DEFAULT_RATE_LIMIT_KEYS: usize = 100_000;
/// Password hashes that may wait for a hashing slot before login and signup answer 503 at once:
/// with argon2id's tens of milliseconds per hash and one hash per core, 64 waiting is about a
/// second of queue on a 2-core machine, well inside the request timeout.
pub const DEFAULT_HASH_QUEUE: usize = 64;
/// Niceness of the password-hashing threads: the lowest, a CPU share of about 1.5% against a
/// busy worker (scheduler weight 15 against 1 024), so a login flood leaves the other routes
/// their throughput and, with the hash's turns on the core that rare, their p99 (measured at 15,
/// weight 36: /db p99 1.52x the quiet run's under a flood, BENCHMARKS.md). An idle core still
/// runs a hash at full speed; a login on a saturated core takes many times longer instead.
pub const DEFAULT_HASH_NICE: i32 = 19;
/// How long a refused login or signup (429, or 503 for a full hashing queue) is held before
/// it is answered: a client that retries at once then sends one attempt a second per
/// connection instead of as many as the server can refuse.
pub const DEFAULT_REFUSAL_DELAY_MS: u64 = 1000;

/// `bareapi`: a fast, honest HTTP API server on hyper and tokio.
#[derive(Debug, Parser)]
#[command(name = "bareapi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `serve`'s flags, accepted without the subcommand name since `serve` is the default.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
// Parsed once at start: the size of the larger variant costs nothing that matters.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Apply pending migrations (unless --no-migrate) and serve HTTP (the default).
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate(DbArgs),
}

/// How the server spreads its work over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeMode {
    /// One OS thread per worker, each a current-thread tokio runtime with its own
    /// SO_REUSEPORT listener: no work stealing, no cross-thread wake-ups.
    PerCore,
    /// One tokio multi-thread runtime behind one listener, for comparison.
    MultiThread,
}

/// How requests get a database connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbMode {
    /// A worker keeps a few long-lived connections that all its in-flight requests share;
    /// their concurrent queries are pipelined on the wire.
    Shared,
    /// Every request checks a connection out of the pool exclusively (the usual way),
    /// kept for measuring the difference.
    Checkout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BAREAPI_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Serve /metrics (and /healthz) on this address instead of the public port.
    #[arg(long, env = "BAREAPI_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Worker count; defaults to the cores this process may run on (so `taskset` is honoured).
    #[arg(long, env = "BAREAPI_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Runtime layout.
    #[arg(long, env = "BAREAPI_RUNTIME", value_enum, default_value = "per-core")]
    pub runtime: RuntimeMode,

    /// Pin worker N to the N-th core this process may run on (per-core runtime only).
    #[arg(long, env = "BAREAPI_PIN_CORES")]
    pub pin_cores: bool,

    /// Listen backlog (capped by the kernel's net.core.somaxconn).
    #[arg(long, env = "BAREAPI_BACKLOG", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u32,

    /// Also serve HTTP/2 with prior knowledge (h2c) on the same port.
    #[arg(long, env = "BAREAPI_HTTP2")]
    pub http2: bool,

    /// Streams one HTTP/2 connection may have open at once (with --http2).
    #[arg(long, env = "BAREAPI_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// PEM certificate chain (the server's certificate first): the port then speaks TLS, with
    /// HTTP/2 and HTTP/1.1 offered by ALPN. Needs --tls-key.
    #[arg(long, env = "BAREAPI_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert's certificate. Needs --tls-cert.
    #[arg(long, env = "BAREAPI_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<std::path::PathBuf>,

    /// TLS handshakes one worker runs at once, from the ClientHello on; more wait for a slot
    /// (within the header timeout).
    #[arg(long, env = "BAREAPI_TLS_HANDSHAKE_CONCURRENCY", default_value_t = DEFAULT_TLS_HANDSHAKE_CONCURRENCY,
          value_parser = parse_positive_usize)]
    pub tls_handshake_concurrency: usize,

    /// Milliseconds a client has to send its request headers.
    #[arg(long, env = "BAREAPI_HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,

    /// Largest single header value in bytes; larger gets 431.
    #[arg(long, env = "BAREAPI_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES,
          value_parser = parse_positive_usize)]
    pub max_header_bytes: usize,

    /// Largest request head in bytes (request line and all headers); larger gets 431.
    #[arg(long, env = "BAREAPI_MAX_HEAD_BYTES", default_value_t = DEFAULT_MAX_HEAD_BYTES,
          value_parser = parse_head_bytes)]
    pub max_head_bytes: usize,

    /// Most headers per request; more gets 431.
    #[arg(long, env = "BAREAPI_MAX_HEADERS", default_value_t = DEFAULT_MAX_HEADERS,
          value_parser = parse_positive_usize)]
    pub max_headers: usize,

    /// Milliseconds a handler may run before the request answers 503.
    #[arg(long, env = "BAREAPI_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// Connections one worker serves at once; more wait in the listen backlog.
    #[arg(long, env = "BAREAPI_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_positive_usize)]
    pub max_connections: usize,

    /// Milliseconds shutdown waits for open connections to finish.
    #[arg(long, env = "BAREAPI_DRAIN_TIMEOUT_MS", default_value_t = DEFAULT_DRAIN_TIMEOUT_MS)]
    pub drain_timeout_ms: u64,

    /// Log one line per request (method, route template, status, duration, request id).
    #[arg(long, env = "BAREAPI_ACCESS_LOG")]
    pub access_log: bool,

    /// Do not record per-request metrics (`/metrics` then shows only gauges).
    #[arg(long, env = "BAREAPI_NO_METRICS")]
    pub no_metrics: bool,

    /// Do not read or send `x-request-id` (5xx answers still carry the id their log line has).
    #[arg(long, env = "BAREAPI_NO_REQUEST_ID")]
    pub no_request_id: bool,

    /// Seconds a session token stays valid.
    #[arg(long, env = "BAREAPI_SESSION_TTL_SECS", default_value_t = DEFAULT_SESSION_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub session_ttl_secs: u64,

    /// Largest request body accepted, in bytes (413 past it).
    #[arg(long, env = "BAREAPI_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES,
          value_parser = parse_positive_usize)]
    pub max_body_bytes: usize,

    /// Largest users-API request body, in bytes (413 past it; --max-body-bytes still caps it).
    #[arg(long, env = "BAREAPI_USERS_MAX_BODY_BYTES", default_value_t = DEFAULT_USERS_MAX_BODY_BYTES,
          value_parser = parse_positive_usize)]
    pub users_max_body_bytes: usize,

    /// Seconds between two deletions of expired and revoked sessions.
    #[arg(long, env = "BAREAPI_SESSION_SWEEP_INTERVAL_SECS", default_value_t = DEFAULT_SESSION_SWEEP_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub session_sweep_interval_secs: u64,

    /// Failed logins one email may have within the window before its logins answer 429.
    #[arg(long, env = "BAREAPI_LOGIN_FAILURES_MAX", default_value_t = DEFAULT_LOGIN_FAILURES_MAX,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_max: u32,

    /// Seconds of the failed-login window, from the first failure.
    #[arg(long, env = "BAREAPI_LOGIN_FAILURES_WINDOW_SECS", default_value_t = DEFAULT_LOGIN_FAILURES_WINDOW_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_failures_window_secs: u64,

    /// Logins per minute one client address may make, past its burst.
    #[arg(long, env = "BAREAPI_LOGIN_RATE_PER_MINUTE", default_value_t = DEFAULT_LOGIN_RATE_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_rate_per_minute: u32,

    /// Logins one client address may make at once.
    #[arg(long, env = "BAREAPI_LOGIN_BURST", default_value_t = DEFAULT_LOGIN_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_burst: u32,

    /// Signups per minute one client address may make, past its burst.
    #[arg(long, env = "BAREAPI_SIGNUP_RATE_PER_MINUTE", default_value_t = DEFAULT_SIGNUP_RATE_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub signup_rate_per_minute: u32,

    /// Signups one client address may make at once.
    #[arg(long, env = "BAREAPI_SIGNUP_BURST", default_value_t = DEFAULT_SIGNUP_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub signup_burst: u32,

    /// Keys (emails, client addresses) each limiter remembers; the least used are forgotten.
    #[arg(long, env = "BAREAPI_RATE_LIMIT_KEYS", default_value_t = DEFAULT_RATE_LIMIT_KEYS,
          value_parser = parse_positive_usize)]
    pub rate_limit_keys: usize,

    /// Comma-separated CIDRs of the proxies whose forwarding header names the client (none by
    /// default: the client is the TCP peer).
    #[arg(long, env = "BAREAPI_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,

    /// The header the trusted proxies write the client's address into.
    #[arg(long, env = "BAREAPI_FORWARDED_HEADER", value_enum, default_value = "x-forwarded-for")]
    pub forwarded_header: ForwardedHeader,

    /// Password hashes that may run at once (default: the cores this process may run on).
    #[arg(long, env = "BAREAPI_HASH_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub hash_concurrency: Option<u16>,

    /// Password hashes that may wait for a slot; past it login and signup answer 503 at once.
    #[arg(long, env = "BAREAPI_HASH_QUEUE", default_value_t = DEFAULT_HASH_QUEUE)]
    pub hash_queue: usize,

    /// Niceness (0..=19) of the password-hashing threads: higher leaves more of the CPU to
    /// serving requests when both want it.
    #[arg(long, env = "BAREAPI_HASH_NICE", default_value_t = DEFAULT_HASH_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub hash_nice: i32,

    /// Milliseconds a refused login or signup (429, or 503 for a full hashing queue) waits
    /// before it is answered (0: at once).
    #[arg(long, env = "BAREAPI_REFUSAL_DELAY_MS", default_value_t = DEFAULT_REFUSAL_DELAY_MS)]
    pub refusal_delay_ms: u64,

    /// Do not apply pending migrations at start.
    #[arg(long, env = "BAREAPI_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Start even when workers × pool size exceeds the connections PostgreSQL accepts (for a
    /// pooler in transaction mode, whose server-side limit the check cannot see).
    #[arg(long, env = "BAREAPI_NO_CONNECTION_BUDGET_CHECK")]
    pub no_connection_budget_check: bool,

    /// Log format.
    #[arg(long, env = "BAREAPI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL (postgres://user:pass@host:port/db).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://bareapi@127.0.0.1:55432/bareapi",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Pool size per worker (multi-thread mode: times the worker count).
    #[arg(long, env = "BAREAPI_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE,
          value_parser = parse_positive_usize)]
    pub pool_size: usize,

    /// Connections each worker shares between its requests (db-mode shared).
    #[arg(long, env = "BAREAPI_SHARED_CONNS", default_value_t = DEFAULT_SHARED_CONNS,
          value_parser = parse_positive_usize)]
    pub shared_conns: usize,

    /// How requests get a connection.
    #[arg(long, env = "BAREAPI_DB_MODE", value_enum, default_value = "shared")]
    pub db_mode: DbMode,

    /// Milliseconds to wait for a pool connection before answering 503.
    #[arg(long, env = "BAREAPI_POOL_WAIT_MS", default_value_t = DEFAULT_POOL_WAIT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pool_wait_ms: u64,

    /// Milliseconds creating one connection may take.
    #[arg(long, env = "BAREAPI_POOL_CREATE_MS", default_value_t = DEFAULT_POOL_CREATE_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pool_create_ms: u64,

    /// Milliseconds the health check of an idle connection may take.
    #[arg(long, env = "BAREAPI_POOL_RECYCLE_MS", default_value_t = DEFAULT_POOL_RECYCLE_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pool_recycle_ms: u64,
}

/// hyper's smallest read buffer is 8 KiB; above 1 MiB a request head is no longer plausible.
fn parse_head_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (8192..=1 << 20).contains(&n) => Ok(n),
        Ok(_) => Err("must be from 8192 to 1048576".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// What the server start-up needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where /metrics is served; `None`: on the public port.
    pub metrics_listen: Option<SocketAddr>,
    pub workers: usize,
    pub runtime: RuntimeMode,
    pub pin_cores: bool,
    pub backlog: u32,
    pub migrate: bool,
    /// Refuse to start when the pools cannot fit the server's `max_connections`.
    pub connection_budget_check: bool,
    /// Serve TLS with this certificate and key (`None`: cleartext).
    pub tls: Option<TlsFiles>,
    /// TLS handshakes one worker runs at once.
    pub tls_handshake_concurrency: usize,
    pub http: HttpSettings,
    pub users: UsersSettings,
    pub abuse: AbuseSettings,
    pub ops: OpsSettings,
    pub db: DbConfig,
}

/// The TLS certificate chain and key files, as given on the command line (loaded and checked
/// by `server::tls` at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates: the server's first, then its chain (intermediates).
    pub cert: std::path::PathBuf,
    /// A PEM private key (PKCS#8, PKCS#1 or SEC1) matching the first certificate.
    pub key: std::path::PathBuf,
}

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    pub per_minute: u32,
    pub burst: u32,
}

/// The users API's limits against abuse (see `abuse` and `auth`).
#[derive(Debug, Clone)]
pub struct AbuseSettings {
    pub login_failures_max: u32,
    pub login_failures_window: Duration,
    pub login_rate: RateSettings,
    pub signup_rate: RateSettings,
    /// Keys each limiter remembers.
    pub limiter_keys: usize,
    pub trusted_proxies: TrustedProxies,
    pub forwarded_header: ForwardedHeader,
    /// Password hashes running at once.
    pub hash_concurrency: usize,
    /// Password hashes waiting for a slot before new ones are refused.
    pub hash_queue: usize,
    /// Niceness of the hashing threads.
    pub hash_nice: i32,
    /// How long a refusal is held before it is answered.
    pub refusal_delay: Duration,
}

impl AbuseSettings {
    /// The defaults, with `hash_concurrency` hashes at once (for tests and benches).
    pub fn defaults(hash_concurrency: usize) -> Self {
        AbuseSettings {
            login_failures_max: DEFAULT_LOGIN_FAILURES_MAX,
            login_failures_window: Duration::from_secs(DEFAULT_LOGIN_FAILURES_WINDOW_SECS),
            login_rate: RateSettings { per_minute: DEFAULT_LOGIN_RATE_PER_MINUTE, burst: DEFAULT_LOGIN_BURST },
            signup_rate: RateSettings { per_minute: DEFAULT_SIGNUP_RATE_PER_MINUTE, burst: DEFAULT_SIGNUP_BURST },
            limiter_keys: DEFAULT_RATE_LIMIT_KEYS,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            hash_concurrency,
            hash_queue: DEFAULT_HASH_QUEUE,
            hash_nice: DEFAULT_HASH_NICE,
            refusal_delay: Duration::from_millis(DEFAULT_REFUSAL_DELAY_MS),
        }
    }
}

/// Connection-level HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Time allowed for a request's headers, and for an idle kept-alive connection to start
    /// the next request (hyper runs one timer for both).
    pub header_read_timeout: Duration,
    pub http2: bool,
    /// Streams one HTTP/2 connection may have open at once; more are refused.
    pub http2_max_concurrent_streams: u32,
    /// Largest request head (request line and headers); larger answers 431 and closes.
    pub max_head_bytes: usize,
    /// Most headers one request may carry; more answers 431 and closes.
    pub max_headers: usize,
}

/// Settings of the users API.
#[derive(Debug, Clone, Copy)]
pub struct UsersSettings {
    /// How long a session token stays valid.
    pub session_ttl: Duration,
    /// Largest request body accepted: `--users-max-body-bytes`, capped by `--max-body-bytes`.
    pub max_body_bytes: usize,
    /// Time between two deletions of dead (expired or revoked) sessions.
    pub session_sweep_interval: Duration,
}

/// Operational settings: limits, timeouts, observability switches.
#[derive(Debug, Clone, Copy)]
pub struct OpsSettings {
    /// Largest single header value; larger answers 431 and closes.
    pub max_header_bytes: usize,
    /// A handler still running after this answers 503.
    pub request_timeout: Duration,
    /// Connections one worker serves at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub drain_timeout: Duration,
    pub access_log: bool,
    pub record_metrics: bool,
    /// Echo the client's `x-request-id`, or send a new one, on every answer.
    pub request_ids: bool,
}

/// What the database layer needs.
#[derive(Clone)]
pub struct DbConfig {
    pub url: String,
    pub pool_size: usize,
    pub shared_conns: usize,
    pub mode: DbMode,
    pub wait_timeout: Duration,
    pub create_timeout: Duration,
    pub recycle_timeout: Duration,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &describe_database_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("shared_conns", &self.shared_conns)
            .field("mode", &self.mode)
            .field("wait_timeout", &self.wait_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .finish()
    }
}

/// The connection settings `DATABASE_URL` names, for logs: hosts, ports, user, database and
/// the options that matter, parsed the way tokio-postgres parses them (a URL, with the password
/// in its user part or as `?password=`, or a `key=value` string), never the password itself.
/// A string that does not parse is not shown at all: where its password is cannot be known.
pub fn describe_database_url(url: &str) -> String {
    use std::fmt::Write;
    use tokio_postgres::config::Host;

    let Ok(pg) = url.parse::<tokio_postgres::Config>() else {
        return "(not a valid connection string; not shown)".to_owned();
    };
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = pg.get_ports().iter().map(u16::to_string).collect();
    let mut out = format!("host={} port={}", hosts.join(","), ports.join(","));
    if let Some(user) = pg.get_user() {
        let _ = write!(out, " user={user}");
    }
    if let Some(db) = pg.get_dbname() {
        let _ = write!(out, " dbname={db}");
    }
    if let Some(name) = pg.get_application_name() {
        let _ = write!(out, " application_name={name}");
    }
    let _ = write!(out, " sslmode={:?}", pg.get_ssl_mode());
    if let Some(t) = pg.get_connect_timeout() {
        let _ = write!(out, " connect_timeout={t:?}");
    }
    out.push_str(if pg.get_password().is_some() { " password=(set, not shown)" } else { " password=(none)" });
    out
}

impl DbArgs {
    pub fn to_config(&self) -> DbConfig {
        DbConfig {
            url: self.database_url.clone(),
            pool_size: self.pool_size,
            shared_conns: self.shared_conns,
            mode: self.db_mode,
            wait_timeout: Duration::from_millis(self.pool_wait_ms),
            create_timeout: Duration::from_millis(self.pool_create_ms),
            recycle_timeout: Duration::from_millis(self.pool_recycle_ms),
        }
    }
}

impl ServeArgs {
    /// Resolves defaults that depend on the machine and checks values that depend on each other.
    pub fn to_config(&self) -> Result<ServerConfig, String> {
        let workers = match self.workers {
            Some(n) => usize::from(n),
            // available_parallelism reads the affinity mask on Linux, so `taskset -c 0` gives 1.
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let db = self.db.to_config();
        if db.mode == DbMode::Shared && db.shared_conns > db.pool_size {
            return Err(format!("--shared-conns ({}) must not exceed --pool-size ({})", db.shared_conns, db.pool_size));
        }
        if self.backlog == 0 {
            return Err("--backlog must be at least 1".to_owned());
        }
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err("--metrics-listen must differ from --listen".to_owned());
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            (Some(_), None) => {
                return Err("--tls-cert needs --tls-key (BAREAPI_TLS_KEY): the certificate's private key".to_owned());
            }
            (None, Some(_)) => {
                return Err("--tls-key needs --tls-cert (BAREAPI_TLS_CERT): the certificate chain".to_owned());
            }
        };
        Ok(ServerConfig {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            workers,
            runtime: self.runtime,
            pin_cores: self.pin_cores,
            backlog: self.backlog,
            migrate: !self.no_migrate,
            connection_budget_check: !self.no_connection_budget_check,
            tls,
            tls_handshake_concurrency: self.tls_handshake_concurrency,
            http: HttpSettings {
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                http2: self.http2,
                http2_max_concurrent_streams: self.http2_max_concurrent_streams,
                max_head_bytes: self.max_head_bytes,
                max_headers: self.max_headers,
            },
            users: UsersSettings {
                session_ttl: Duration::from_secs(self.session_ttl_secs),
                max_body_bytes: self.users_max_body_bytes.min(self.max_body_bytes),
                session_sweep_interval: Duration::from_secs(self.session_sweep_interval_secs),
            },
            abuse: AbuseSettings {
                login_failures_max: self.login_failures_max,
                login_failures_window: Duration::from_secs(self.login_failures_window_secs),
                login_rate: RateSettings { per_minute: self.login_rate_per_minute, burst: self.login_burst },
                signup_rate: RateSettings { per_minute: self.signup_rate_per_minute, burst: self.signup_burst },
                limiter_keys: self.rate_limit_keys,
                trusted_proxies: TrustedProxies(self.trusted_proxies.clone()),
                forwarded_header: self.forwarded_header,
                hash_concurrency: match self.hash_concurrency {
                    Some(n) => usize::from(n),
                    None => std::thread::available_parallelism().map_or(1, |n| n.get()),
                },
                hash_queue: self.hash_queue,
                hash_nice: self.hash_nice,
                refusal_delay: Duration::from_millis(self.refusal_delay_ms),
            },
            ops: OpsSettings {
                max_header_bytes: self.max_header_bytes,
                request_timeout: Duration::from_millis(self.request_timeout_ms),
                max_connections: self.max_connections,
                drain_timeout: Duration::from_millis(self.drain_timeout_ms),
                access_log: self.access_log,
                record_metrics: !self.no_metrics,
                request_ids: !self.no_request_id,
            },
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut all = vec!["bareapi"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        let cfg = cli.serve.to_config().unwrap();
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cfg.runtime, RuntimeMode::PerCore);
        assert_eq!(cfg.db.mode, DbMode::Shared);
        assert_eq!(cfg.db.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(cfg.backlog, DEFAULT_BACKLOG);
        assert!(!cfg.http.http2);
        assert_eq!(cfg.http.http2_max_concurrent_streams, DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS);
        assert!(cfg.workers >= 1);
        assert!(cfg.migrate);
    }

    /// The users API has a body limit of its own, a few KiB, which the global one still caps.
    #[test]
    fn users_bodies_have_their_own_limit_under_the_global_one() {
        let cfg = parse(&[]).unwrap().serve.to_config().unwrap();
        assert_eq!(cfg.users.max_body_bytes, DEFAULT_USERS_MAX_BODY_BYTES);
        assert_eq!(cfg.users.session_sweep_interval, Duration::from_secs(DEFAULT_SESSION_SWEEP_INTERVAL_SECS));
        let cfg = parse(&["--users-max-body-bytes", "100000"]).unwrap().serve.to_config().unwrap();
        assert_eq!(cfg.users.max_body_bytes, 100_000);
        let cfg = parse(&["--users-max-body-bytes", "100000", "--max-body-bytes", "1024"]).unwrap();
        assert_eq!(cfg.serve.to_config().unwrap().users.max_body_bytes, 1024);
        assert!(parse(&["--users-max-body-bytes", "0"]).is_err());
        assert!(parse(&["--session-sweep-interval-secs", "0"]).is_err());
    }

    #[test]
    fn serve_subcommand_takes_the_same_flags() {
        let cli = parse(&["serve", "--listen", "127.0.0.1:0", "--workers", "3", "--runtime", "multi-thread"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("expected serve") };
        let cfg = args.to_config().unwrap();
        assert_eq!(cfg.workers, 3);
        assert_eq!(cfg.runtime, RuntimeMode::MultiThread);
        assert_eq!(cfg.listen.port(), 0);
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--listen", "nonsense"]).is_err());
        assert!(parse(&["--runtime", "fast"]).is_err());
        assert!(parse(&["--pool-size", "0"]).is_err());
        assert!(parse(&["--pool-wait-ms", "0"]).is_err());
        assert!(parse(&["--max-head-bytes", "100"]).is_err());
        assert!(parse(&["--max-header-bytes", "0"]).is_err());
        assert!(parse(&["--max-headers", "0"]).is_err());
        assert!(parse(&["--request-timeout-ms", "0"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--http2-max-concurrent-streams", "0"]).is_err());
        assert!(parse(&["--http2-max-concurrent-streams", "-1"]).is_err());
        assert!(parse(&["--http2-max-concurrent-streams", "4294967296"]).is_err());
        let cli = parse(&["--pool-size", "2", "--shared-conns", "3"]).unwrap();
        let err = cli.serve.to_config().unwrap_err();
        assert!(err.contains("--shared-conns"), "{err}");
    }

    #[test]
    fn abuse_limits_have_flags_and_documented_defaults() {
        let cfg = parse(&[]).unwrap().serve.to_config().unwrap();
        assert_eq!(cfg.abuse.login_failures_max, DEFAULT_LOGIN_FAILURES_MAX);
        assert_eq!(cfg.abuse.login_failures_window, Duration::from_secs(DEFAULT_LOGIN_FAILURES_WINDOW_SECS));
        assert_eq!(cfg.abuse.login_rate, RateSettings { per_minute: 30, burst: 20 });
        assert_eq!(cfg.abuse.signup_rate, RateSettings { per_minute: 5, burst: 20 });
        assert!(cfg.abuse.trusted_proxies.0.is_empty(), "no proxy is trusted by default");
        assert_eq!(cfg.abuse.forwarded_header, ForwardedHeader::XForwardedFor);
        assert!(cfg.abuse.hash_concurrency >= 1);
        assert_eq!(cfg.abuse.hash_queue, DEFAULT_HASH_QUEUE);
        let cfg = parse(&[
            "--login-failures-max",
            "3",
            "--login-failures-window-secs",
            "60",
            "--login-rate-per-minute",
            "7",
            "--login-burst",
            "2",
            "--signup-rate-per-minute",
            "1",
            "--signup-burst",
            "1",
            "--rate-limit-keys",
            "50",
            "--hash-concurrency",
            "1",
            "--hash-queue",
            "0",
            "--forwarded-header",
            "forwarded",
            "--trusted-proxies",
            "10.0.0.0/8,::1",
            "--trusted-proxies",
            "192.168.1.0/24",
        ])
        .unwrap()
        .serve
        .to_config()
        .unwrap();
        assert_eq!((cfg.abuse.login_failures_max, cfg.abuse.login_failures_window.as_secs()), (3, 60));
        assert_eq!(cfg.abuse.login_rate, RateSettings { per_minute: 7, burst: 2 });
        assert_eq!(cfg.abuse.signup_rate, RateSettings { per_minute: 1, burst: 1 });
        assert_eq!((cfg.abuse.limiter_keys, cfg.abuse.hash_concurrency, cfg.abuse.hash_queue), (50, 1, 0));
        assert_eq!(cfg.abuse.forwarded_header, ForwardedHeader::Forwarded);
        let nets: Vec<String> = cfg.abuse.trusted_proxies.0.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
        for bad in [
            &["--trusted-proxies", "10.0.0.0/33"][..],
            &["--trusted-proxies", "10.0.0.1/8"],
            &["--trusted-proxies", "10.0.0.0/8,nonsense"],
            &["--trusted-proxies", "proxy.example.com"],
            &["--login-failures-max", "0"],
            &["--login-failures-window-secs", "0"],
            &["--login-rate-per-minute", "0"],
            &["--signup-burst", "0"],
            &["--rate-limit-keys", "0"],
            &["--hash-concurrency", "0"],
            &["--hash-queue", "-1"],
            &["--forwarded-header", "x-real-ip"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let err = parse(&["--trusted-proxies", "10.0.0.0/8,10.0.0.0/99"]).unwrap_err().to_string();
        assert!(err.contains("--trusted-proxies") && err.contains("prefix length"), "{err}");
    }

    fn cfg_default_handshakes() -> usize {
        parse(&[]).unwrap().serve.to_config().unwrap().tls_handshake_concurrency
    }

    #[test]
    fn tls_cert_and_key_go_together() {
        assert_eq!(parse(&[]).unwrap().serve.to_config().unwrap().tls, None);
        let cfg = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap().serve.to_config().unwrap();
        let files = cfg.tls.expect("TLS configured");
        assert_eq!((files.cert.to_str(), files.key.to_str()), (Some("c.pem"), Some("k.pem")));
        let err = parse(&["--tls-cert", "c.pem"]).unwrap().serve.to_config().unwrap_err();
        assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
        let err = parse(&["--tls-key", "k.pem"]).unwrap().serve.to_config().unwrap_err();
        assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
        assert_eq!(cfg_default_handshakes(), DEFAULT_TLS_HANDSHAKE_CONCURRENCY);
        let cfg = parse(&["--tls-handshake-concurrency", "3"]).unwrap().serve.to_config().unwrap();
        assert_eq!(cfg.tls_handshake_concurrency, 3);
        for bad in ["0", "-1", "many"] {
            assert!(parse(&["--tls-handshake-concurrency", bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn metrics_listen_must_differ_from_listen() {
        let cfg = |args: &[&str]| parse(args).unwrap().serve.to_config();
        assert!(cfg(&["--listen", "127.0.0.1:8080", "--metrics-listen", "127.0.0.1:8080"]).is_err());
        let ok = cfg(&["--listen", "127.0.0.1:8080", "--metrics-listen", "127.0.0.1:9090"]).unwrap();
        assert_eq!(ok.metrics_listen.map(|a| a.port()), Some(9090));
        // Port 0 twice: two different free ports.
        assert!(cfg(&["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]).is_ok());
        assert_eq!(cfg(&[]).unwrap().metrics_listen, None);
        assert!(parse(&["--metrics-listen", "nowhere"]).is_err());
    }

    #[test]
    fn passwords_never_reach_the_description_of_the_connection_string() {
        for url in [
            "postgres://u:s3cr3t@h:5433/db",
            "postgresql://u:s3cr3t@h1,h2:5433,5434/db?application_name=x",
            "postgres://u@h/db?password=s3cr3t",
            "postgres://u@h/db?sslmode=disable&password=s3cr3t&connect_timeout=5",
            "host=h port=5433 user=u password=s3cr3t dbname=db",
            "host=h user=u password='s3 cr3t' dbname=db",
        ] {
            let text = describe_database_url(url);
            assert!(!text.contains("s3cr3t") && !text.contains("cr3t"), "{url} -> {text}");
            assert!(text.contains("user=u") && text.contains("password=(set, not shown)"), "{url} -> {text}");
            let debug = format!("{:?}", DbConfig { url: url.to_owned(), ..parse(&[]).unwrap().serve.db.to_config() });
            assert!(!debug.contains("s3cr3t"), "{debug}");
        }
        assert!(describe_database_url("postgres://u:s3cr3t@h:5433/db").contains("host=h port=5433"));
        assert!(describe_database_url("postgres://u@h/db").contains("password=(none)"));
        // Unparsable: nothing of it is shown (its password could be anywhere in it).
        let bad = describe_database_url("postgres://u:s3cr3t@h:notaport/db");
        assert!(!bad.contains("s3cr3t") && bad.contains("not shown"), "{bad}");
    }
}
