//! The listener: at most so many connections at once, and none held by a caller that
//! sends too slowly or sits idle, with a graceful shutdown.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires there: a
//! caller sending one header byte every two seconds kept its connection forever, and
//! thousands of them exhausted the process. Here every connection is served by hyper's
//! HTTP/1 with a timer: the headers of each request (and the wait for the next one on
//! a kept-alive connection) must arrive within the timeout; request bodies are bounded
//! by a layer on the router (`http::router`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::warn;

/// How many connections, and how slow a caller may be.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// For a request's headers to arrive, and for a kept-alive connection's next
    /// request to begin.
    pub header_timeout: Duration,
    /// How long a shutdown waits for connections to finish their requests.
    pub drain: Duration,
}

/// Serves a router under [`Limits`]. Cheap to clone; its clones share one count.
#[derive(Clone)]
pub struct Server {
    limits: Limits,
    permits: Arc<Semaphore>,
}

impl Server {
    pub fn new(limits: Limits) -> Self {
        Server { limits, permits: Arc::new(Semaphore::new(limits.max_connections)) }
    }

    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.limits.max_connections - self.permits.available_permits()
    }

    /// Serves `router` on `listener` until `shutdown` completes, then finishes the
    /// requests in flight (up to `limits.drain`). Each request carries its peer as
    /// `ConnectInfo`.
    pub async fn serve(&self, listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.limits.header_timeout);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
            let connection = graceful
                .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
            metrics::gauge!("http_connections_open").increment(1.0);
            tokio::spawn(async move {
                // A caller that was too slow, or went away, ends here; nothing to report.
                let _ = connection.await;
                drop(permit);
                metrics::gauge!("http_connections_open").decrement(1.0);
            });
        }
        drop(listener);
        if tokio::time::timeout(self.limits.drain, graceful.shutdown()).await.is_err() {
            warn!("some connections were still open when the shutdown stopped waiting for them");
        }
    }
}
