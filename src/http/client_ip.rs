//! The client's address: the TCP peer, or, when the peer is a trusted proxy (`--trusted-proxies`),
//! the address that proxy says it is forwarding for (`X-Forwarded-For` or RFC 7239 `Forwarded`,
//! whichever `--forwarded-header` names: only the header the proxy itself writes can be
//! believed, since a proxy passes the other one through as the client sent it).
//!
//! The header is read right to left: each proxy appends the address it received the request
//! from, so the right-most entries are the ones written by the proxies in front of us. Entries
//! that are themselves trusted proxies are skipped; the first untrusted one is the client.
//! Anything to its left was written by the client or by proxies we know nothing of, and is
//! ignored (a client can put any address at the left of the list). An entry that is not an
//! address (`unknown`, an RFC 7239 obfuscated identifier, garbage) stops the walk: the client is
//! then the last address we could vouch for (the trusted hop that wrote the entry).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

/// An IPv4 or IPv6 network: an address and a prefix length. A bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), 128, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` (an address `width` bits wide) with everything past the first `prefix` bits cleared.
fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    let host_bits = width - u32::from(prefix);
    if host_bits >= 128 { 0 } else { bits >> host_bits << host_bits }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address. Host bits set past the prefix are
    /// refused (`10.0.0.1/8`): such a value is usually a typo for something else.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let net: IpAddr =
            addr.parse().map_err(|_| format!("{s:?} is not a CIDR: {addr:?} is not an IPv4 or IPv6 address"))?;
        let net = net.to_canonical();
        let width: u8 = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => return Err(format!("{s:?} is not a CIDR: the prefix length must be a number from 0 to {width}")),
            },
        };
        let bits = match net {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if masked(bits, u32::from(width), prefix) != bits {
            return Err(format!("{s:?} has bits set past its /{prefix} prefix (is the network address mistyped?)"));
        }
        Ok(Cidr { net, prefix })
    }
}

/// The networks whose peers may tell us the client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// Which header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`
    Forwarded,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address for a request that arrived from `peer` with `headers` (see the module
/// doc). Headers are not read at all unless the peer is trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies, header: ForwardedHeader) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.contains(client) {
        return client;
    }
    let name = match header {
        ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
        ForwardedHeader::Forwarded => FORWARDED,
    };
    // Several header lines are one list, in order (RFC 9110 section 5.3).
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { return client };
        match header {
            ForwardedHeader::XForwardedFor => entries.extend(value.split(',')),
            ForwardedHeader::Forwarded => entries.extend(split_outside_quotes(value, ',')),
        }
    }
    for entry in entries.iter().rev() {
        let parsed = match header {
            ForwardedHeader::XForwardedFor => parse_node(entry.trim()),
            ForwardedHeader::Forwarded => forwarded_for(entry),
        };
        match parsed {
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted.contains(client) {
                    return client;
                }
            }
            None => return client,
        }
    }
    // Every entry is a trusted proxy: the left-most is as far as the chain goes.
    client
}

/// `s` split at `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// The address of a `Forwarded` element's `for=` parameter (`for=192.0.2.60;proto=http`,
/// `For="[2001:db8:cafe::17]:4711"`); `None` when it has none or it is not an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    split_outside_quotes(element, ';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        Some(parse_node(value))
    })?
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:4711`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[').and_then(|v| v.strip_suffix(']')).and_then(|v| v.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cidrs_parse_v4_v6_and_bare_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 counts as IPv4");
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")) && !c.contains(ip("2001:db9::1")) && !c.contains(ip("10.0.0.1")));
        let c: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(c.to_string(), "127.0.0.1/32");
        assert!(c.contains(ip("127.0.0.1")) && !c.contains(ip("127.0.0.2")));
        let c: Cidr = "::1".parse().unwrap();
        assert_eq!(c.to_string(), "::1/128");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::2")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::7")));
        assert!(" 192.168.0.0/16 ".parse::<Cidr>().is_ok());
    }

    #[test]
    fn malformed_cidrs_are_refused_with_a_reason() {
        for (bad, says) in [
            ("", "not an IPv4 or IPv6 address"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("example.com", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("10.0.0.0/-1", "from 0 to 32"),
            ("10.0.0.0/", "from 0 to 32"),
            ("2001:db8::/129", "from 0 to 128"),
            ("10.0.0.1/8", "bits set past its /8"),
            ("2001:db8::1/32", "bits set past its /32"),
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let h = headers("x-forwarded-for", &["6.6.6.6"]);
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &none, ForwardedHeader::XForwardedFor), ip("198.51.100.7"));
        let other = cidrs(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &other, ForwardedHeader::XForwardedFor), ip("198.51.100.7"));
        let h = headers("forwarded", &["for=6.6.6.6"]);
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &other, ForwardedHeader::Forwarded), ip("198.51.100.7"));
        // A mapped peer address is the IPv4 client.
        assert_eq!(client_ip(ip("::ffff:198.51.100.7"), &h, &other, ForwardedHeader::Forwarded), ip("198.51.100.7"));
    }

    #[test]
    fn x_forwarded_for_is_read_right_to_left_skipping_trusted_hops() {
        let trusted = cidrs(&["10.0.0.0/8", "2001:db8::/32"]);
        let xff = ForwardedHeader::XForwardedFor;
        let peer = ip("10.0.0.2");
        // The client's own (spoofed) entry at the left is ignored: the proxy appended the real one.
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.5, 10.1.1.1"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("203.0.113.5"));
        // Several header lines are one list.
        let h = headers("x-forwarded-for", &["6.6.6.6", "203.0.113.5,10.1.1.1"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("203.0.113.5"));
        // Ports and brackets as some proxies write them.
        let h = headers("x-forwarded-for", &["[2001:db9::5]:443, 2001:db8::9"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("2001:db9::5"));
        let h = headers("x-forwarded-for", &["203.0.113.5:1234"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("203.0.113.5"));
        // Only trusted hops: the left-most.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted, xff), peer);
        // Garbage stops the walk at the last address vouched for.
        let h = headers("x-forwarded-for", &["203.0.113.5, unknown, 10.1.1.1"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), ip("10.1.1.1"));
        let h = headers("x-forwarded-for", &["nonsense"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), peer);
        // The other header is not read: the proxy passes it through as the client sent it.
        let h = headers("forwarded", &["for=6.6.6.6"]);
        assert_eq!(client_ip(peer, &h, &trusted, xff), peer);
    }

    #[test]
    fn forwarded_is_parsed_by_rfc_7239() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let fwd = ForwardedHeader::Forwarded;
        let peer = ip("10.0.0.2");
        let h = headers("forwarded", &["for=6.6.6.6, for=192.0.2.60;proto=http;by=203.0.113.43, For=\"10.1.1.1:80\""]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), ip("192.0.2.60"));
        let h = headers("forwarded", &["for=\"[2001:db8:cafe::17]:4711\""]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["proto=https;for=\"[2001:db8::1]\";host=\"a,b\"", "for=10.2.2.2"]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), ip("2001:db8::1"));
        // Obfuscated and unknown nodes stop the walk.
        let h = headers("forwarded", &["for=192.0.2.60, for=_hidden, for=10.3.3.3"]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), ip("10.3.3.3"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), peer);
        // An element without for= is not an address either.
        let h = headers("forwarded", &["proto=https"]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), peer);
        // X-Forwarded-For is not read.
        let h = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(client_ip(peer, &h, &trusted, fwd), peer);
    }
}
