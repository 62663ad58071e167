//! Operator endpoints behind `Authorization: Bearer $ADMIN_TOKEN`: menu reload.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// `POST /admin/menus/reload`: compiles the menus again and serves them if every check
/// passes (200 with the editions now served); otherwise 422 with every diagnostic while
/// the current menus keep serving.
pub async fn reload_menus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(admin) = state.admin.clone() else {
        let body = json!({ "error": "the admin API is off: set ADMIN_TOKEN to enable it" });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    };
    if !authorized(&headers, &admin.token) {
        let body = json!({ "error": "send the header `Authorization: Bearer <ADMIN_TOKEN>`" });
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body))
            .into_response();
    }
    let gateway = state.gateway.clone();
    let dir = admin.menus_dir.clone();
    match tokio::task::spawn_blocking(move || gateway.reload(&dir)).await {
        Ok(Ok(bundle)) => {
            let menus: Vec<_> = bundle
                .menus()
                .iter()
                .map(|m| json!({ "service": m.service, "version": m.version, "codes": m.codes, "screens": m.screen_count() }))
                .collect();
            (StatusCode::OK, Json(json!({ "menus": menus, "retired": bundle.retired() }))).into_response()
        }
        Ok(Err(diagnostics)) => {
            let body = json!({
                "error": "the menus do not pass the checks; the current ones keep serving",
                "diagnostics": diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "the reload crashed" })))
            .into_response(),
    }
}

/// Compares the bearer token in constant time, so that its bytes cannot be guessed one
/// by one from response times.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
