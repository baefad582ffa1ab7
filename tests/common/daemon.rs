//! Third-party servers the tests start themselves (nginx, PgBouncer): finding Debian's binary,
//! a private folder for their files, waiting for their port, and stopping them however the test
//! ends.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Debian's `name` binary; `scripts/test.sh` installs the package when it is missing.
pub fn find_binary(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found: run the tests through scripts/test.sh, which installs it"))
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh private folder for one daemon's configuration, logs and pid file.
pub fn private_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bareapi-{what}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running daemon, stopped with SIGTERM (nginx's master stops its workers only when asked)
/// and its folder removed on drop.
pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` and waits up to 10 s for 127.0.0.1:`port` to accept; on failure panics
    /// with the file `log` in `dir`.
    pub fn start(mut cmd: Command, dir: PathBuf, port: u16, log: &str) -> Daemon {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let daemon = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(daemon.dir.join(log)).unwrap_or_default();
                panic!("{cmd:?} did not listen on port {port} within 10 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
