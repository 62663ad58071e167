//! `/healthz` (the process answers), `/readyz` (its dependencies answer) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when Postgres and the session store both answer within the probe timeout; a
/// read replica's state is shown beside them.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let gateway = &state.gateway;
    let (db, store) = tokio::join!(
        tokio::time::timeout(state.probe_timeout, gateway.money().ping()),
        tokio::time::timeout(state.probe_timeout, gateway.store().ping()),
    );
    let describe = |r: Result<Result<(), String>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => (true, "ok".to_owned()),
        Ok(Err(e)) => (false, e),
        Err(_) => (false, "timed out".to_owned()),
    };
    let (db_ok, db) = describe(db.map(|r| r.map_err(|e| e.to_string())));
    let (store_ok, store_msg) = describe(store.map(|r| r.map_err(|e| e.to_string())));
    let status = if db_ok && store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({
        "postgres": db,
        "sessions": { "store": gateway.store().kind(), "status": store_msg },
    });
    // A replica away is reported, not failed: its reads go to the primary meanwhile.
    if let Some(replica) = gateway.money().replica() {
        let probed = tokio::time::timeout(state.probe_timeout, replica.probe()).await;
        body["replica"] = json!(match probed {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(why)) => format!("{why}; reads that may lag are served by the primary"),
            Err(_) => "timed out; reads that may lag are served by the primary".to_owned(),
        });
    }
    (status, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
