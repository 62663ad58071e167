//! The hops' own Postgres connections: handed back as they are, without the round trip
//! sqlx's pool spends on each one it takes back.
//!
//! sqlx's pool checks every connection it is given back with a Sync and its
//! ReadyForQuery, so each query a hop waits on costs a second round trip on the
//! gateway's and on Postgres's CPU (a tenth of a menu hop's, measured). That check
//! exists for connections whose query was cut short or failed on the wire, and the lane
//! knows which those are: it sees every query to its end. A connection whose query
//! finished — rows, or an error Postgres reported — goes back as it is; one whose query
//! was dropped midway or failed below SQL (I/O, protocol, a fatal server error) is
//! closed. One that sat idle for a while is pinged before it is used again, as the pool
//! does. The lane runs single statements only: no transactions, so nothing can be left
//! half done in it (the ops that need one use the pool).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{Stream, TryStreamExt, stream};
use sqlx::error::DatabaseError;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgDatabaseError, PgQueryResult, PgRow, PgSeverity, PgStatement,
    PgTypeInfo,
};
use sqlx::{Connection, Describe, Either, Error, Execute, Executor, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// Where an op's statements go: the lane in a running gateway, a pool in tools and tests.
pub trait Db: for<'c> sqlx::PgExecutor<'c> + Copy + Send + Sync {}

impl<T> Db for T where T: for<'c> sqlx::PgExecutor<'c> + Copy + Send + Sync {}

/// How the lane opens, checks and retires connections.
#[derive(Clone, Debug)]
pub struct LaneOptions {
    /// Connections open at most; a query beyond them waits for one.
    pub max_connections: u32,
    /// How long a query waits for a connection before it fails (`PoolTimedOut`).
    pub acquire_timeout: Duration,
    /// A connection idle for longer is pinged before it is used.
    pub ping_after_idle: Duration,
    /// A connection older than this is closed when it comes back, so that none lives
    /// forever (a server's memory per backend grows with its statement cache).
    pub max_lifetime: Duration,
}

impl Default for LaneOptions {
    fn default() -> Self {
        LaneOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
            ping_after_idle: Duration::from_secs(1),
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

/// Connections for the statements hops wait on. Cheap to clone; `&Lane` is an sqlx
/// executor, like `&PgPool`.
#[derive(Clone)]
pub struct Lane(Arc<Shared>);

struct Shared {
    connect: PgConnectOptions,
    options: LaneOptions,
    /// Last in, first out: the connection used last is warmest, and the ones at the
    /// bottom are the ones that get pinged or retired.
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

struct Idle {
    conn: PgConnection,
    born: Instant,
    since: Instant,
}

/// A connection out of the lane; it goes back on drop only if its query ran to its end.
struct Lease {
    conn: Option<PgConnection>,
    born: Instant,
    /// Set once the statement ran to its end with the connection still usable.
    reusable: bool,
    lane: Arc<Shared>,
    /// Released after the connection is back, so that whoever gets it finds one idle.
    _permit: OwnedSemaphorePermit,
}

impl Lane {
    /// A lane to the database `connect` names; connections open as they are needed.
    pub fn new(connect: PgConnectOptions, options: LaneOptions) -> Self {
        let permits = Arc::new(Semaphore::new(usize::try_from(options.max_connections.max(1)).unwrap_or(1)));
        Lane(Arc::new(Shared { connect, options, idle: Mutex::new(Vec::new()), permits }))
    }

    /// Connections open and idle now.
    pub fn idle(&self) -> usize {
        self.0.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    async fn acquire(&self) -> Result<Lease, Error> {
        let shared = &self.0;
        let lease = async {
            let permit = Arc::clone(&shared.permits).acquire_owned().await.map_err(|_| Error::PoolClosed)?;
            loop {
                let idle = shared.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some(Idle { mut conn, born, since }) = idle else {
                    let conn = PgConnection::connect_with(&shared.connect).await?;
                    return Ok(Lease::new(conn, Instant::now(), shared, permit));
                };
                // A connection that fails its ping is dropped (closed) and the next tried.
                if since.elapsed() <= shared.options.ping_after_idle || conn.ping().await.is_ok() {
                    return Ok(Lease::new(conn, born, shared, permit));
                }
            }
        };
        match tokio::time::timeout(shared.options.acquire_timeout, lease).await {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(Error::PoolClosed)) => Err(Error::PoolClosed),
            Ok(Err(e)) => Err(Error::Io(std::io::Error::other(NeverSent(e)))),
            Err(_) => Err(Error::PoolTimedOut),
        }
    }
}

/// Why a connection for a statement could not be had (it could not be opened): the
/// statement was never sent. Carried inside `sqlx::Error::Io`, the one variant that
/// can wrap an error of ours.
#[derive(Debug, thiserror::Error)]
#[error("no connection, the statement was not sent: {0}")]
struct NeverSent(Error);

/// Whether `e` failed before its statement left the gateway: no connection was free
/// (`PoolTimedOut`) or none could be opened. Then it cannot have changed anything.
pub fn never_sent(e: &Error) -> bool {
    match e {
        Error::PoolTimedOut | Error::PoolClosed => true,
        Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<NeverSent>()),
        _ => false,
    }
}

impl Lease {
    fn new(conn: PgConnection, born: Instant, lane: &Arc<Shared>, permit: OwnedSemaphorePermit) -> Self {
        Lease { conn: Some(conn), born, reusable: false, lane: Arc::clone(lane), _permit: permit }
    }

    fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lease holds its connection until it is dropped")
    }

    /// Notes how the statement ended: the connection stays if Postgres answered it,
    /// rows or an error of the statement's own.
    fn settle<T>(&mut self, outcome: &Result<T, Error>) {
        self.reusable = match outcome {
            Ok(_) => true,
            Err(Error::Database(e)) => !is_fatal(e.as_ref()),
            Err(_) => false,
        };
    }
}

/// A server error that ends the session (`FATAL`, `PANIC`: the backend is going away).
pub fn is_fatal(e: &dyn DatabaseError) -> bool {
    e.try_downcast_ref::<PgDatabaseError>()
        .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let now = Instant::now();
        if self.reusable && now.duration_since(self.born) < self.lane.options.max_lifetime {
            let idle = Idle { conn, born: self.born, since: now };
            self.lane.idle.lock().unwrap_or_else(PoisonError::into_inner).push(idle);
        }
        // Otherwise the connection drops here and its socket closes. A statement
        // Postgres had started runs to its end (as one whose answer the network lost
        // would) and the backend goes when it finds no one to answer.
    }
}

impl<'l> Executor<'l> for &'_ Lane {
    type Database = Postgres;

    /// Collects the rows before yielding them: the lane's statements return a screen's
    /// worth at most, and a lease cannot live inside the stream it feeds.
    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.clone();
        let rows = async move {
            let mut lease = lane.acquire().await?;
            let rows: Result<Vec<_>, Error> = lease.conn().fetch_many(query).try_collect().await;
            lease.settle(&rows);
            rows
        };
        Box::pin(stream::once(rows).map_ok(|rows| stream::iter(rows.into_iter().map(Ok))).try_flatten())
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.clone();
        Box::pin(async move {
            let mut lease = lane.acquire().await?;
            let row = lease.conn().fetch_optional(query).await;
            lease.settle(&row);
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, Error>> {
        let lane = self.clone();
        Box::pin(async move {
            let mut lease = lane.acquire().await?;
            let statement = lease.conn().prepare_with(sql, parameters).await;
            lease.settle(&statement);
            statement
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, Error>> {
        let lane = self.clone();
        Box::pin(async move {
            let mut lease = lane.acquire().await?;
            let described = lease.conn().describe(sql).await;
            lease.settle(&described);
            described
        })
    }
}

/// sqlx's executors are `Debug`.
impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("max_connections", &self.0.options.max_connections)
            .field("idle", &self.idle())
            .finish()
    }
}
