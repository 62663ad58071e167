//! Real Redis topologies on loopback, started for one test and stopped with it: a
//! Cluster of three masters with a replica each, a Sentinel set (a master, a replica,
//! three Sentinels), and a lone server. Each server is a `redis-server` child of the test, on
//! ports nobody else holds, with its files under the test's temporary directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Sentinels' name for the master they watch.
pub const MASTER: &str = "wallet";

/// One `redis-server` (or Sentinel) process; killed when dropped.
struct Server {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    fn start(port: u16, args: Vec<String>) -> Self {
        let mut server = Server { port, args, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests start redis-server: install Redis 7 (`apt-get install redis-server`)");
        self.child = Some(child);
    }

    /// SIGKILL: no goodbye, no last write.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` loopback ports free now, each with its cluster bus port (+10000) free too.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let port = rand::random_range(20_000..30_000u16);
        if !ports.contains(&port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            ports.push(port);
        }
    }
    ports
}

fn scratch(kind: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{kind}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `redis-cli -p port args…`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` until it holds, for at most `within`.
fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "gave up waiting for {what} after {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn plain_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.to_str().unwrap(),
        "--save",
        "",
        "--appendonly",
        "no",
        // A replica's first copy starts at once, not after the default 5 s wait for
        // other replicas to share it.
        "--repl-diskless-sync-delay",
        "0",
        // A master without a live replica refuses writes at once (NOREPLICAS) rather
        // than making each one wait for a copy that cannot come (README, Redis).
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
        "--logfile",
        &format!("{port}.log"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One Redis server of the test's own, for faults that would disturb other tests on
/// the shared one (`CLIENT PAUSE`).
pub struct Lone {
    server: Server,
    _dir: PathBuf,
}

impl Lone {
    pub fn start() -> Self {
        let dir = scratch("lone");
        let port = free_ports(1)[0];
        let mut args = plain_args(port, &dir);
        args.extend(["--min-replicas-to-write", "0"].map(str::to_owned));
        let lone = Lone { server: Server::start(port, args), _dir: dir };
        wait_for("the server to answer", Duration::from_secs(10), || cli(port, &["PING"]).contains("PONG"));
        lone
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.server.port, args)
    }
}

/// A topology whose masters can be made to fail over.
pub trait Failover: Send + 'static {
    /// A replica takes over by agreement; returns the new master's port.
    fn failover(&mut self) -> u16;
    /// The master (one of them) is killed and replaced; returns the dead port.
    fn kill_master(&mut self) -> u16;
    /// A killed server starts again and rejoins as a replica.
    fn restart(&mut self, port: u16);
}

/// A Redis Cluster: three masters, one replica each.
pub struct Cluster {
    servers: Vec<Server>,
    _dir: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = scratch("cluster");
        let servers: Vec<Server> = free_ports(6)
            .into_iter()
            .map(|port| {
                let mut args = plain_args(port, &dir);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        // A dead master is replaced within about two seconds.
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-replica-validity-factor",
                        "0",
                    ]
                    .map(str::to_owned),
                );
                Server::start(port, args)
            })
            .collect();
        for s in &servers {
            wait_for("a cluster node to answer", Duration::from_secs(10), || {
                cli(s.port, &["PING"]).contains("PONG")
            });
        }
        let nodes: Vec<String> = servers.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(made.status.success(), "cluster create: {}", String::from_utf8_lossy(&made.stdout));
        let cluster = Cluster { servers, _dir: dir };
        cluster.settled();
        cluster
    }

    /// `redis+cluster://` naming two of the nodes: the client learns the rest.
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}", self.servers[0].port, self.servers[1].port)
    }

    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.servers.iter().filter(|s| s.child.is_some()).map(|s| s.port)
    }

    /// `(port, is master, port of its master)` per live node, as a live node sees them.
    fn roles(&self) -> Vec<(u16, bool, Option<u16>)> {
        let Some(asked) = self.live().next() else { return Vec::new() };
        let nodes = cli(asked, &["CLUSTER", "NODES"]);
        let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
        let port_of =
            |field: &str| -> Option<u16> { field.split('@').next()?.rsplit(':').next()?.parse().ok() };
        lines
            .iter()
            .filter(|f| f.len() > 3 && !f[2].contains("fail") && f[7] == "connected")
            .filter_map(|f| {
                let master = f[2].contains("master");
                let of = lines.iter().find(|m| m[0] == f[3]).and_then(|m| port_of(m[1]));
                Some((port_of(f[1])?, master, of))
            })
            .collect()
    }

    /// Waits until every live node says the cluster is ok and three masters serve.
    pub fn settled(&self) {
        wait_for("the cluster to be ok on every node", Duration::from_secs(30), || {
            let masters = self.masters();
            self.live().all(|p| cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                && masters.len() == 3
                && masters.iter().all(|&m| {
                    let copies = cli(m, &["INFO", "replication"]);
                    copies.contains("connected_slaves:0") || copies.contains("state=online")
                })
        });
    }

    pub fn masters(&self) -> Vec<u16> {
        self.roles().into_iter().filter(|r| r.1).map(|r| r.0).collect()
    }
}

impl Failover for Cluster {
    /// A replica takes over from its master by agreement (`CLUSTER FAILOVER`): nothing
    /// acknowledged is lost. Returns the replica that is now a master.
    fn failover(&mut self) -> u16 {
        let replicas: Vec<u16> = self.roles().into_iter().filter(|r| !r.1).map(|r| r.0).collect();
        let replica = replicas[rand::random_range(0..replicas.len())];
        assert!(cli(replica, &["CLUSTER", "FAILOVER"]).contains("OK"));
        wait_for("the replica to be a master", Duration::from_secs(15), || {
            cli(replica, &["ROLE"]).starts_with("master")
        });
        self.settled();
        replica
    }

    /// A master is killed; its replica is elected in its place. Returns the dead port.
    fn kill_master(&mut self) -> u16 {
        let masters = self.masters();
        let port = masters[rand::random_range(0..masters.len())];
        self.servers.iter_mut().find(|s| s.port == port).unwrap().kill();
        self.settled();
        port
    }

    /// A killed node starts again; it rejoins as a replica of the master that replaced it.
    fn restart(&mut self, port: u16) {
        let server = self.servers.iter_mut().find(|s| s.port == port).unwrap();
        server.spawn();
        wait_for("the node to rejoin", Duration::from_secs(30), || {
            self.roles().iter().any(|r| r.0 == port && r.2.is_some())
        });
        self.settled();
    }
}

/// redis-cli's raw answer of alternating names and values, as a map.
fn fields(raw: &str) -> std::collections::HashMap<String, String> {
    let lines: Vec<&str> = raw.lines().collect();
    lines
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect()
}

/// A master, its replica and three Sentinels watching them (quorum 2).
pub struct Sentinels {
    redis: Vec<Server>,
    sentinels: Vec<Server>,
    _dir: PathBuf,
}

impl Sentinels {
    pub fn start() -> Self {
        let dir = scratch("sentinel");
        let ports = free_ports(5);
        let master = Server::start(ports[0], plain_args(ports[0], &dir));
        let mut replica_args = plain_args(ports[1], &dir);
        replica_args.extend(["--replicaof", "127.0.0.1", &ports[0].to_string()].map(str::to_owned));
        let replica = Server::start(ports[1], replica_args);
        let sentinels = ports[2..]
            .iter()
            .map(|&port| {
                let conf = dir.join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile sentinel-{port}.log\n\
                         sentinel monitor {MASTER} 127.0.0.1 {master} 2\n\
                         sentinel down-after-milliseconds {MASTER} 1000\n\
                         sentinel failover-timeout {MASTER} 4000\n",
                        dir = dir.display(),
                        master = ports[0],
                    ),
                )
                .unwrap();
                Server::start(port, vec![conf.to_str().unwrap().to_owned(), "--sentinel".into()])
            })
            .collect();
        let set = Sentinels { redis: vec![master, replica], sentinels, _dir: dir };
        set.settled();
        set
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port, as the Sentinels agree on it.
    pub fn master(&self) -> Option<u16> {
        let said: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| cli(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]))
            .collect();
        let port: u16 = said[0].lines().nth(1)?.trim().parse().ok()?;
        said.iter().all(|s| s.lines().nth(1).is_some_and(|p| p.trim() == port.to_string())).then_some(port)
    }

    /// Waits until the Sentinels agree on a live master that has its replica connected
    /// and each Sentinel knows the other two.
    pub fn settled(&self) {
        wait_for("the Sentinels to agree on a master with a replica", Duration::from_secs(40), || {
            let Some(master) = self.master() else { return false };
            let live = self.redis.iter().any(|s| s.port == master && s.child.is_some());
            live && cli(master, &["INFO", "replication"]).contains("state=online")
                && self.sentinels.iter().all(|s| {
                    // Each knows the other two, and the replica as one it could promote.
                    let master = fields(&cli(s.port, &["SENTINEL", "MASTER", MASTER]));
                    let replica = fields(&cli(s.port, &["SENTINEL", "REPLICAS", MASTER]));
                    master.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && replica.get("flags").map(String::as_str) == Some("slave")
                        && replica.get("master-link-status").map(String::as_str) == Some("ok")
                })
        });
    }
}

impl Failover for Sentinels {
    /// The Sentinels hand the master's role to the replica (`SENTINEL FAILOVER`); the old
    /// master becomes its replica. Returns the new master's port.
    fn failover(&mut self) -> u16 {
        let before = self.master();
        // Refused (NOGOODSLAVE) until the Sentinels have seen the replica in sync.
        wait_for("the Sentinels to accept a failover", Duration::from_secs(30), || {
            cli(self.sentinels[0].port, &["SENTINEL", "FAILOVER", MASTER]).contains("OK")
        });
        wait_for("the Sentinels to name a new master", Duration::from_secs(30), || {
            self.master().is_some_and(|m| Some(m) != before)
        });
        self.settled();
        self.master().unwrap()
    }

    /// The master is killed; the Sentinels promote the replica. Returns the dead port.
    fn kill_master(&mut self) -> u16 {
        let port = self.master().unwrap();
        self.redis.iter_mut().find(|s| s.port == port).unwrap().kill();
        wait_for("the Sentinels to promote the replica", Duration::from_secs(60), || {
            self.master().is_some_and(|m| m != port)
        });
        port
    }

    /// A killed server starts again; the Sentinels make it the new master's replica.
    fn restart(&mut self, port: u16) {
        self.redis.iter_mut().find(|s| s.port == port).unwrap().spawn();
        self.settled();
    }
}
