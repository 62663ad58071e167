//! One Redis server, a Redis Cluster or a Sentinel-watched master, behind one connection.
//!
//! `REDIS_URL` picks the shape: `redis://` (or `rediss://`) is one server;
//! `redis+cluster://h1:p1,h2:p2` names a Cluster by some of its nodes;
//! `redis+sentinel://s1:p1,s2:p2,s3:p3/<master>[/<db>]` names the master the Sentinels
//! agree on. A user and password before the hosts are the Redis nodes' own; the
//! Sentinels' password, when they have one, is `?sentinel_password=…`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisFuture, RedisResult, Value};

/// Where `REDIS_URL` leads, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, by its URL as redis-rs reads it.
    Single(String),
    /// A Cluster, by the URLs of the nodes to learn its layout from.
    Cluster(Vec<String>),
    Sentinel(SentinelTarget),
}

/// Its `Debug` leaves the passwords out.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sentinel_password: Option<String>,
    pub tls: bool,
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl RedisTarget {
    /// Reads a `REDIS_URL`; the error says what is wrong and what a right one looks like.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| shapes("it has no scheme"))?;
        match scheme {
            "redis" | "rediss" => {
                redis::Client::open(url).map_err(|e| shapes(&e.to_string()))?;
                Ok(RedisTarget::Single(url.to_owned()))
            }
            "redis+cluster" | "rediss+cluster" => {
                let plain = scheme.trim_end_matches("+cluster");
                let parts = Parts::of(rest)?;
                if !parts.path.is_empty() {
                    return Err(shapes("a Cluster has one database: leave the path empty"));
                }
                if !parts.query.is_empty() {
                    return Err(shapes("a Cluster URL takes no options"));
                }
                let auth = parts.auth.map(|a| format!("{a}@")).unwrap_or_default();
                let nodes: Vec<String> =
                    parts.hosts.iter().map(|(h, p)| format!("{plain}://{auth}{h}:{p}")).collect();
                for node in &nodes {
                    redis::Client::open(node.as_str()).map_err(|e| shapes(&e.to_string()))?;
                }
                Ok(RedisTarget::Cluster(nodes))
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let parts = Parts::of(rest)?;
                let mut path = parts.path.split('/');
                let master = path.next().filter(|m| !m.is_empty()).ok_or_else(|| {
                    shapes("a Sentinel URL names the master after the hosts: redis+sentinel://s1:26379,s2:26379/mymaster")
                })?;
                let db = match path.next() {
                    None | Some("") => 0,
                    Some(db) => {
                        db.parse().map_err(|_| shapes(&format!("database `{db}` is not a number")))?
                    }
                };
                let (username, password) = match parts.auth {
                    None => (None, None),
                    Some(auth) => match auth.split_once(':') {
                        Some((user, pass)) => {
                            ((!user.is_empty()).then(|| user.to_owned()), Some(pass.to_owned()))
                        }
                        None => (Some(auth.to_owned()), None),
                    },
                };
                let mut sentinel_password = None;
                for pair in parts.query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("sentinel_password", value)) => sentinel_password = Some(value.to_owned()),
                        _ => {
                            // The name only: a mistyped option may carry a password.
                            let name = pair.split('=').next().unwrap_or_default();
                            return Err(shapes(&format!(
                                "unknown option `{name}` (only sentinel_password=…)"
                            )));
                        }
                    }
                }
                Ok(RedisTarget::Sentinel(SentinelTarget {
                    sentinels: parts.hosts,
                    master: master.to_owned(),
                    db,
                    username,
                    password,
                    sentinel_password,
                    tls: scheme == "rediss+sentinel",
                }))
            }
            other => Err(shapes(&format!("unknown scheme `{other}`"))),
        }
    }
}

fn shapes(why: &str) -> String {
    format!(
        "{why}; REDIS_URL is redis://host:port[/db] (one server), redis+cluster://host:port,host:port \
         (a Cluster by some of its nodes) or redis+sentinel://host:port,host:port/master[/db] (Sentinels and \
         the master's name); rediss… for TLS"
    )
}

/// `[auth@]h1:p1,h2:p2[/path][?query]`, split.
struct Parts<'a> {
    auth: Option<&'a str>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
    query: &'a str,
}

impl<'a> Parts<'a> {
    fn of(rest: &'a str) -> Result<Self, String> {
        // The credentials first: a password may hold a `?`.
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = hosts
            .split(',')
            .map(|host| {
                let (name, port) =
                    host.rsplit_once(':').ok_or_else(|| shapes(&format!("`{host}` has no port")))?;
                let port = port.parse().map_err(|_| shapes(&format!("`{host}` has no port")))?;
                if name.is_empty() {
                    return Err(shapes(&format!("`{host}` has no host")));
                }
                Ok((name.to_owned(), port))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Parts { auth, hosts, path: path.trim_end_matches('/'), query })
    }
}

/// Reads `url` and connects to what it names (see [`RedisLink::connect`]).
pub async fn connect(url: &str, timeout: Duration) -> RedisResult<RedisLink> {
    let target = RedisTarget::parse(url)
        .map_err(|why| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "REDIS_URL", why)))?;
    RedisLink::connect(&target, timeout).await
}

/// A connection to whichever shape `REDIS_URL` names, cheap to clone; redis-rs commands,
/// pipelines and scripts run on it as on any connection.
#[derive(Clone)]
pub enum RedisLink {
    /// Reconnects by itself.
    Single(ConnectionManager),
    /// Follows the slots as they move (MOVED, ASK, a failover).
    Cluster(ClusterConnection),
    /// Asks the Sentinels again when the master stops answering as one.
    Sentinel(SentinelLink),
}

impl RedisLink {
    /// Connects, failing fast (about `timeout`) when nothing answers; a command gives up
    /// after `timeout` too.
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(2)
                    .set_max_delay(200);
                let client = redis::Client::open(url.as_str())?;
                Ok(RedisLink::Single(ConnectionManager::new_with_config(client, config).await?))
            }
            RedisTarget::Cluster(nodes) => {
                // Few, short retries: a slot whose master died has none until a replica
                // takes over, and a hop cannot wait for that past its deadline.
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(400)
                    .build()?;
                Ok(RedisLink::Cluster(client.get_async_connection().await?))
            }
            RedisTarget::Sentinel(target) => {
                Ok(RedisLink::Sentinel(SentinelLink::connect(target, timeout).await?))
            }
        }
    }

    /// Whether keys that one command or script touches together must share a hash tag.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisLink::Cluster(_))
    }
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisLink::Single(c) => c.req_packed_command(cmd),
            RedisLink::Cluster(c) => c.req_packed_command(cmd),
            RedisLink::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisLink::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisLink::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisLink::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisLink::Single(c) => c.get_db(),
            RedisLink::Cluster(c) => c.get_db(),
            RedisLink::Sentinel(c) => c.get_db(),
        }
    }
}

/// The master the Sentinels name, re-asked when it fails or answers as a replica
/// (`READONLY` after a failover demoted it).
#[derive(Clone)]
pub struct SentinelLink {
    shared: Arc<SentinelShared>,
    db: i64,
}

struct SentinelShared {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The connection to the master as last found, and how many times it was found.
    current: Mutex<(u64, MultiplexedConnection)>,
    /// When the last lookup of the master failed.
    failed: Mutex<Option<Instant>>,
    config: AsyncConnectionConfig,
    timeout: Duration,
}

impl SentinelLink {
    async fn connect(target: &SentinelTarget, timeout: Duration) -> RedisResult<Self> {
        let addr = |(host, port): &(String, u16)| ConnectionAddr::Tcp(host.clone(), *port);
        let mut builder = SentinelClientBuilder::new(
            target.sentinels.iter().map(addr),
            target.master.clone(),
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(target.db);
        if let Some(user) = &target.username {
            builder = builder.set_client_to_redis_username(user.clone());
        }
        if let Some(password) = &target.password {
            builder = builder.set_client_to_redis_password(password.clone());
        }
        if let Some(password) = &target.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password.clone());
        }
        if target.tls {
            builder = builder
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        }
        let mut sentinels = builder.build()?;
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
        let first = tokio::time::timeout(timeout, sentinels.get_async_connection_with_config(&config))
            .await
            .map_err(|_| timed_out())??;
        Ok(SentinelLink {
            shared: Arc::new(SentinelShared {
                sentinels: tokio::sync::Mutex::new(sentinels),
                current: Mutex::new((0, first)),
                failed: Mutex::new(None),
                config,
                timeout,
            }),
            db: target.db,
        })
    }

    fn current(&self) -> (u64, MultiplexedConnection) {
        self.shared.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Asks the Sentinels for the master again, unless another request already did
    /// since `seen` was current, or a lookup failed a moment ago (the requests queued
    /// behind it fail at once rather than each asking again).
    async fn rediscover(&self, seen: u64) -> RedisResult<()> {
        let mut sentinels = self.shared.sentinels.lock().await;
        if self.current().0 != seen {
            return Ok(());
        }
        let failed_at = *self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed_at.is_some_and(|at| at.elapsed() < LOOKUP_PAUSE) {
            return Err(timed_out());
        }
        let found = tokio::time::timeout(
            self.shared.timeout,
            sentinels.get_async_connection_with_config(&self.shared.config),
        )
        .await
        .map_err(|_| timed_out())
        .and_then(|found| found);
        let mut failed = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match found {
            Ok(found) => {
                *self.shared.current.lock().unwrap_or_else(PoisonError::into_inner) = (seen + 1, found);
                *failed = None;
                Ok(())
            }
            Err(e) => {
                *failed = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Runs `request` on the master; after an answer that says the master changed (a
    /// lost connection, or `READONLY` from a demoted one), finds the new one, and tries
    /// once more when the first try cannot have been carried out. redis-rs hands server
    /// errors back as values (`moved` finds them), not as errors.
    async fn run<T, F>(&self, request: F, moved: fn(&T) -> bool) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> RedisFuture<'static, T>,
    {
        let mut tried_again = false;
        loop {
            let (seen, conn) = self.current();
            let (carried_out, answer) = match request(conn).await {
                Err(e) if master_changed(&e) => (!e.is_connection_refusal(), Err(e)),
                Ok(value) if moved(&value) => (false, Ok(value)),
                other => return other,
            };
            let found = self.rediscover(seen).await;
            if tried_again || carried_out || found.is_err() {
                return answer;
            }
            tried_again = true;
        }
    }
}

/// How long after a failed lookup of the master requests fail without a new one.
const LOOKUP_PAUSE: Duration = Duration::from_millis(250);

/// An answer from a server that is not (or not yet) the master: the command did nothing.
fn not_master(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if matches!(e.code(), "READONLY" | "MASTERDOWN" | "LOADING"))
}

impl ConnectionLike for SentinelLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.run(
            move |mut conn| {
                let cmd = cmd.clone();
                Box::pin(async move { conn.req_packed_command(&cmd).await })
            },
            not_master,
        ))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.run(
            move |mut conn| {
                let pipeline = pipeline.clone();
                Box::pin(async move { conn.req_packed_commands(&pipeline, offset, count).await })
            },
            |values: &Vec<Value>| values.iter().any(not_master),
        ))
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// A failure after which the master should be looked up again.
fn master_changed(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_of_url_is_read() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379/2").unwrap(),
            RedisTarget::Single("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            RedisTarget::parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            RedisTarget::Cluster(vec![
                "redis://:pw@10.0.0.1:7000".into(),
                "redis://:pw@10.0.0.2:7001".into()
            ])
        );
        let RedisTarget::Sentinel(s) =
            RedisTarget::parse("redis+sentinel://app:pw@s1:26379,s2:26380/wallet/3?sentinel_password=x")
                .unwrap()
        else {
            panic!("not a Sentinel target");
        };
        assert_eq!(s.sentinels, vec![("s1".into(), 26379), ("s2".into(), 26380)]);
        assert_eq!((s.master.as_str(), s.db), ("wallet", 3));
        assert_eq!((s.username.as_deref(), s.password.as_deref()), (Some("app"), Some("pw")));
        assert_eq!(s.sentinel_password.as_deref(), Some("x"));
    }

    #[test]
    fn a_server_that_is_not_the_master_is_told_by_its_answer() {
        let error = |text: &str| {
            let parsed = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
            assert!(matches!(parsed, Value::ServerError(_)), "{parsed:?}");
            parsed
        };
        assert!(not_master(&error("READONLY You can't write against a read only replica.")));
        assert!(not_master(&error("LOADING Redis is loading the dataset in memory")));
        assert!(!not_master(&error("NOSCRIPT No matching script.")));
        assert!(!not_master(&Value::Okay));
    }

    #[test]
    fn a_wrong_url_says_what_a_right_one_looks_like() {
        for (url, says) in [
            ("localhost:6379", "no scheme"),
            ("http://x:1", "unknown scheme `http`"),
            ("redis+cluster://a:1,b", "`b` has no port"),
            ("redis+cluster://a:1/2", "one database"),
            ("redis+sentinel://a:1", "names the master"),
            ("redis+sentinel://a:1/m/x", "`x` is not a number"),
            ("redis+sentinel://a:1/m?password=s3cret", "unknown option `password`"),
            ("redis+cluster://a:1?x=1", "takes no options"),
        ] {
            let error = RedisTarget::parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
            assert!(error.contains("redis+sentinel://host:port"), "{url}: {error}");
        }
    }
}
