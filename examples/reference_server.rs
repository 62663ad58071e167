//! The ceiling for menu hops: a bare hyper server that does one Redis GET and one SET
//! per request and nothing else. `bench/run.sh` drives it with the same load generator
//! as the gateway, so that the gateway's hop rate is reported as a ratio to this one.
//!
//! `cargo run --release --example reference_server -- 127.0.0.1:18090 redis://127.0.0.1:6379`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;

async fn hop(
    req: Request<Incoming>,
    mut redis: ConnectionManager,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    // The session key, as the gateway would derive it from the form.
    let session = form_urlencoded_value(&body, b"sessionId").unwrap_or_default();
    let key = format!("ref:s:{session}");
    let previous: Option<Vec<u8>> = redis.get(&key).await.unwrap_or(None);
    let next = previous.map_or(1, |p| p.len() + 1);
    let _: Result<(), _> = redis.set_ex(&key, vec![b'x'; next.min(200)], 180).await;
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"CON Welcome\n1. Continue")))
        .unwrap_or_default())
}

fn form_urlencoded_value(body: &[u8], name: &[u8]) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let (k, v) = pair.split_at(pair.iter().position(|b| *b == b'=')?);
        (k == name).then(|| String::from_utf8_lossy(&v[1..]).into_owned())
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let redis_url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let redis = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("reference server on {listen}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let redis = redis.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| hop(req, redis.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
