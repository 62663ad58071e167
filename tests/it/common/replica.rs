//! A PostgreSQL primary of the test's own and a streaming replica of it, on loopback
//! ports: `initdb`, `pg_basebackup -R`, `pg_ctl`, stopped (immediately) when dropped.
//! The servers run as the `postgres` user when the tests run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// One server: its data directory and port.
pub struct Server {
    dir: PathBuf,
    pub port: u16,
    running: bool,
}

fn tool(name: &str) -> String {
    let installed = Path::new(BIN).join(name);
    if installed.exists() { installed.display().to_string() } else { name.to_owned() }
}

/// Runs a PostgreSQL tool as `postgres` when we are root (the server refuses root).
fn run(name: &str, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &tool(name)]);
        c
    } else {
        Command::new(tool(name))
    };
    let out = command.args(args).output().unwrap_or_else(|e| panic!("{name} runs: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A scratch directory the `postgres` user owns.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ussd-pg-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let owner =
            Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status().unwrap();
        assert!(owner.success());
    }
    dir
}

impl Server {
    fn start(&mut self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        self.running = true;
    }

    /// Stops the server at once (no checkpoint, as a crash would).
    pub fn stop(&mut self) {
        if self.running {
            run("pg_ctl", &["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    pub fn restart(&mut self) {
        self.start();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary and its streaming replica.
pub struct Pair {
    pub primary: Server,
    pub replica: Server,
}

impl Pair {
    pub fn start() -> Self {
        let dir = scratch();
        let mut primary = Server { dir, port: free_port(), running: false };
        let data = primary.dir.join("data");
        run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        primary.start();
        let mut replica = Server { dir: scratch(), port: free_port(), running: false };
        let copy = replica.dir.join("data");
        let from = primary.port.to_string();
        run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &from,
                "-U",
                "postgres",
                "-D",
                copy.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        replica.start();
        Pair { primary, replica }
    }
}
