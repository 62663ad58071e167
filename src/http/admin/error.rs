//! Every refusal the admin API makes, with its status: one enum, answered as JSON.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::error;
use utoipa::ToSchema;

use crate::admin::agents::AgentError;
use crate::admin::billers::BillerError;
use crate::admin::flags::FlagError;
use crate::admin::merchants::MerchantError;
use crate::events::webhooks::WebhookError;

/// Why a call was refused. The rule the API keeps: 400 means the request breaks the
/// OpenAPI document (a type, a pattern, a length, a range, an unknown field); a
/// request the document allows but that cannot be done is a 404, 409 or 422 saying why.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token, or one that is unknown or revoked (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token lacks the operation's scope (403).
    #[error("token `{token}` does not have the scope `{scope}`")]
    Forbidden { token: String, scope: &'static str },
    /// The request breaks the document (400).
    #[error("{0}")]
    Malformed(String),
    /// The body is over the limit, refused unread (413).
    #[error("{0}")]
    TooLarge(String),
    /// What the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists (409).
    #[error("{0}")]
    Conflict(String),
    /// The transfer was reversed before: the earlier reversal, told again (409).
    #[error("this transfer was reversed before, by {}", .reversal.as_deref().unwrap_or_default())]
    Reversed { reversal: Option<String>, amount: i64, fee_refunded: i64 },
    /// Well formed, but it cannot be done (422).
    #[error("{0}")]
    Unacceptable(String),
    /// The menus do not pass the checks; the current ones keep serving (422).
    #[error("the menus do not pass the checks; the current ones keep serving")]
    MenusRefused(Vec<String>),
    /// The database did not answer (503); the cause goes to the log, not the caller.
    #[error("the database is unavailable; retry later")]
    Unavailable(#[from] sqlx::Error),
    /// The session store did not answer (503).
    #[error("the session store is unavailable; retry later")]
    Sessions(crate::session::StoreError),
    /// The work behind the call crashed (500).
    #[error("{0}")]
    Crashed(&'static str),
}

/// The body of every refusal (some add fields, named in their operation).
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: refusals are built by `AdminError`.
pub struct Refusal {
    /// Why, in words an operator can act on.
    error: String,
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AdminError::Malformed(_) => StatusCode::BAD_REQUEST,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) | AdminError::Reversed { .. } => StatusCode::CONFLICT,
            AdminError::Unacceptable(_) | AdminError::MenusRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Unavailable(_) | AdminError::Sessions(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Crashed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({ "error": self.to_string() });
        match self {
            AdminError::Reversed { reversal, amount, fee_refunded } => {
                body["reversal"] = json!(reversal);
                body["amount"] = json!(amount);
                body["fee_refunded"] = json!(fee_refunded);
            }
            AdminError::MenusRefused(diagnostics) => body["diagnostics"] = json!(diagnostics),
            _ => {}
        }
        body
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let AdminError::Unavailable(e) = &self {
            error!(error = %e, "admin API: the database is unavailable");
        }
        if let AdminError::Sessions(e) = &self {
            error!(error = %e, "admin API: the session store is unavailable");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let AdminError::Unauthorized(_) = self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AgentError> for AdminError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::NotACustomer => AdminError::Unacceptable(e.to_string()),
            AgentError::AlreadyAgent
            | AgentError::NumberTaken(_)
            | AgentError::StoreTaken(_)
            | AgentError::KeyReused => AdminError::Conflict(e.to_string()),
            AgentError::Unknown(_) => AdminError::NotFound(e.to_string()),
            AgentError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

impl From<FlagError> for AdminError {
    fn from(e: FlagError) -> Self {
        match e {
            FlagError::Invalid(reason) => AdminError::Malformed(reason),
            FlagError::Unacceptable(reason) => AdminError::Unacceptable(reason),
            FlagError::Taken(_) => AdminError::Conflict(e.to_string()),
            FlagError::Unknown(_) => AdminError::NotFound(e.to_string()),
            FlagError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

impl From<BillerError> for AdminError {
    fn from(e: BillerError) -> Self {
        match e {
            BillerError::Invalid(reason) => AdminError::Malformed(reason),
            BillerError::Unacceptable(reason) => AdminError::Unacceptable(reason),
            BillerError::CodeTaken(_) => AdminError::Conflict(e.to_string()),
            BillerError::Unknown(_) => AdminError::NotFound(e.to_string()),
            BillerError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

impl From<MerchantError> for AdminError {
    fn from(e: MerchantError) -> Self {
        match e {
            MerchantError::Invalid(reason) => AdminError::Malformed(reason),
            MerchantError::Unacceptable(reason) => AdminError::Unacceptable(reason),
            MerchantError::Taken(reason) => AdminError::Conflict(reason),
            MerchantError::Unknown(_) => AdminError::NotFound(e.to_string()),
            MerchantError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

impl From<WebhookError> for AdminError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(reason) => AdminError::Malformed(reason),
            WebhookError::Unacceptable(reason) => AdminError::Unacceptable(reason),
            WebhookError::Conflict(reason) => AdminError::Conflict(reason),
            WebhookError::Unknown(_) => AdminError::NotFound(e.to_string()),
            WebhookError::Database(e) => AdminError::Unavailable(e),
        }
    }
}
