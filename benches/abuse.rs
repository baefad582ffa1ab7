//! What the abuse limits cost a login that passes them: the client address from the peer and
//! the forwarding header, the address's token bucket, the email's key (SHA-256 of its lower-cased
//! form) and its failed-login count, then the success that clears it. Measured with a
//! returning client (its entries present) and with a client never seen before in limiters
//! filled to their capacity (each check inserts and evicts).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bareapi::abuse::{self, Limits};
use bareapi::config::{AbuseSettings, DEFAULT_RATE_LIMIT_KEYS};
use bareapi::http::client_ip::{ForwardedHeader, TrustedProxies, client_ip};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;

/// What the login handler does before and after the password check, when both limits pass.
fn passing_login(limits: &Limits, peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies, email: &str) {
    let now = Instant::now();
    let client = client_ip(peer, headers, trusted, ForwardedHeader::XForwardedFor);
    limits.logins.check(client, now).expect("address limit passes");
    let key = abuse::email_key(email);
    limits.failed_logins.attempt(&key, now).expect("failure limit passes");
    limits.failed_logins.succeeded(black_box(&key));
}

fn email(i: u32) -> String {
    format!("user-{i}@example.com")
}

fn address(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)))
}

fn limiter(c: &mut Criterion) {
    let mut settings = AbuseSettings::defaults(1);
    // Rates high enough that no check in the loop is refused: the cost of a passing login.
    settings.login_rate.per_minute = u32::MAX;
    settings.login_rate.burst = u32::MAX;
    settings.login_failures_window = Duration::from_secs(3600);
    let none = TrustedProxies(Vec::new());
    let no_headers = HeaderMap::new();
    let mut g = c.benchmark_group("abuse limits per passing login");

    let limits = Limits::new(&settings);
    let peer = address(7);
    let mail = email(7);
    g.bench_function("returning client", |b| b.iter(|| passing_login(&limits, peer, &no_headers, &none, &mail)));

    // Behind a trusted proxy: the client's address is parsed from X-Forwarded-For.
    let trusted = TrustedProxies(vec!["127.0.0.1".parse().expect("a CIDR")]);
    let mut forwarded = HeaderMap::new();
    forwarded.insert("x-forwarded-for", "203.0.113.9, 198.51.100.4".parse().expect("a header value"));
    let proxy = IpAddr::V4(Ipv4Addr::LOCALHOST);
    g.bench_function("returning client behind a trusted proxy", |b| {
        b.iter(|| passing_login(&limits, proxy, &forwarded, &trusted, &mail))
    });

    // Limiters at capacity: every login is a new address and a new email (inserted, the least
    // used entry evicted), the state a flood of distinct keys leaves.
    let full = Limits::new(&settings);
    let emails: Vec<String> = (0..(2 * DEFAULT_RATE_LIMIT_KEYS) as u32).map(email).collect();
    for (i, e) in emails.iter().enumerate().take(DEFAULT_RATE_LIMIT_KEYS) {
        let now = Instant::now();
        full.logins.check(address(i as u32), now).expect("passes");
        full.failed_logins.attempt(&abuse::email_key(e), now).expect("passes");
    }
    let mut i = DEFAULT_RATE_LIMIT_KEYS;
    g.bench_function("new client, limiters full", |b| {
        b.iter(|| {
            i = if i + 1 == emails.len() { 0 } else { i + 1 };
            passing_login(&full, address(i as u32), &no_headers, &none, &emails[i])
        })
    });
    g.finish();
}

criterion_group!(benches, limiter);
criterion_main!(benches);
