//! A real ZooKeeper server for the live tests: Debian's `zookeeper` package (installed
//! with apt-get when missing), started as `ZooKeeperServerMain` on a free loopback port
//! with a temporary data directory, and killed when dropped.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The Java class path of Debian's ZooKeeper.
pub const CLASS_PATH: &str = "/usr/share/java/*:/usr/share/zookeeper/*";

/// The message a test prints when it skips because ZooKeeper cannot be installed.
pub const SKIP_MESSAGE: &str = "SKIPPED: ZooKeeper is not installed and apt-get cannot install it";

static INSTALL: Mutex<Option<Result<(), String>>> = Mutex::new(None);

fn installed() -> bool {
    Path::new("/usr/share/java/zookeeper.jar").exists()
        || fs::read_dir("/usr/share/java").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("zookeeper") && name.ends_with(".jar")
            })
        })
}

fn apt_install() -> Result<(), String> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "zookeeper"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let output = install().map_err(|error| format!("apt-get: {error}"))?;
    if output.status.success() && installed() {
        return Ok(());
    }
    let _ = Command::new("apt-get")
        .args(["update", "-q"])
        .stdin(Stdio::null())
        .output();
    let output = install().map_err(|error| format!("apt-get: {error}"))?;
    if output.status.success() && installed() {
        Ok(())
    } else {
        Err(format!(
            "apt-get install -y zookeeper failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Makes sure ZooKeeper and Java are there (installing ZooKeeper once per test binary).
pub fn ensure_installed() -> Result<(), String> {
    let mut guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let result = if installed() { Ok(()) } else { apt_install() };
        let result = result.and_then(|()| {
            Command::new("java")
                .arg("-version")
                .output()
                .map_err(|error| format!("java: {error}"))
                .map(|_| ())
        });
        *guard = Some(result);
    }
    guard.clone().expect("set above")
}

/// One ZooKeeper server on loopback.
pub struct ZooKeeper {
    child: Option<Child>,
    dir: TempDir,
    /// Its client port.
    pub port: u16,
}

/// A free loopback port.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

impl ZooKeeper {
    /// Starts a server (installing ZooKeeper first if needed); `None` after printing
    /// [`SKIP_MESSAGE`] with the reason when it cannot be installed.
    pub fn start() -> Option<ZooKeeper> {
        if let Err(reason) = ensure_installed() {
            eprintln!("{SKIP_MESSAGE}: {reason}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("revenant-zookeeper-")
            .tempdir()
            .expect("temporary directory");
        let port = free_port();
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("data directory");
        let config = dir.path().join("zoo.cfg");
        fs::write(
            &config,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 minSessionTimeout=1000\nmaxSessionTimeout=60000\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,srvr\n",
                data.display()
            ),
        )
        .expect("zoo.cfg");
        let mut server = ZooKeeper {
            child: None,
            dir,
            port,
        };
        server.start_again();
        Some(server)
    }

    /// Kills the server (`kill -9`): every session loses its connection.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory, and waits until it
    /// answers.
    pub fn start_again(&mut self) {
        self.stop();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("zookeeper.log"))
            .expect("log");
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp", CLASS_PATH])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ZooKeeper (java)");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60));
    }

    /// `zk://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("zookeeper.log")).unwrap_or_default()
    }

    fn ruok(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"ruok").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer == "imok"
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.ruok() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not answer on port {} within {timeout:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
