//! Listening sockets, created with socket2 so that the backlog, `SO_REUSEPORT` and
//! `TCP_NODELAY` are set deliberately.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::RuntimeMode;

/// Binds a non-blocking listener. With `reuse_port`, several listeners (one per worker, or a
/// new process during a restart) can bind the same address; the kernel spreads connections.
pub fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Inherited by accepted sockets on Linux; connection.rs sets it again to be sure everywhere.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `count` listeners on `addr` with `SO_REUSEPORT`. With port 0 the first listener picks
/// the port and the others bind that same port.
pub fn bind_reuseport_group(addr: SocketAddr, backlog: u32, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind(addr, backlog, true)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind(bound, backlog, true)?);
    }
    Ok(all)
}

/// The listening sockets the server runs on, bound before it starts (see [`bind_for`]).
pub enum Listeners {
    /// One `SO_REUSEPORT` listener per worker.
    PerCore(Vec<std::net::TcpListener>),
    /// One listener for the multi-thread runtime.
    MultiThread(std::net::TcpListener),
}

impl Listeners {
    /// The address bound (with port 0, the port the kernel picked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listeners::PerCore(all) => all.first().ok_or_else(|| io::Error::other("no listener"))?.local_addr(),
            Listeners::MultiThread(one) => one.local_addr(),
        }
    }
}

/// Binds what the runtime layout needs: a listener per worker (per-core) or one.
pub fn bind_for(runtime: RuntimeMode, addr: SocketAddr, backlog: u32, workers: usize) -> io::Result<Listeners> {
    Ok(match runtime {
        RuntimeMode::PerCore => Listeners::PerCore(bind_reuseport_group(addr, backlog, workers)?),
        RuntimeMode::MultiThread => Listeners::MultiThread(bind(addr, backlog, true)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reuseport_group_shares_one_port() {
        let group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 128, 3).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(group.iter().all(|l| l.local_addr().unwrap().port() == port));
    }
}
