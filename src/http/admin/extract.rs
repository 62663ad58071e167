//! What admin handlers take from a request — the caller with its scope, checked path
//! values, the listing limit, the idempotency key, a JSON body — each refusing with an
//! [`AdminError`] and stating its part of the OpenAPI document.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Required, Schema};

use super::AppState;
use super::error::AdminError;
use crate::admin::{Principal, Scope};
use crate::domain::Msisdn;
use crate::domain::shape::{self, Shape};

/// What a handler tells the trail about its call, beside the method, route, token and
/// status the middleware knows: whom or what it was about, and what it did.
#[derive(Clone, Debug, Default)]
pub struct Note {
    pub token: Option<String>,
    pub target: Option<String>,
    pub detail: Option<Value>,
}

/// The call's entry in the audit trail, shared by the middleware (which writes it once
/// the answer is known) and the handler (which adds to it as it learns).
#[derive(Clone, Default)]
pub struct Trail(Arc<Mutex<Note>>);

impl Trail {
    fn with<R>(&self, f: impl FnOnce(&mut Note) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn target(&self, target: impl Into<String>) {
        self.with(|n| n.target = Some(target.into()));
    }

    pub fn detail(&self, detail: Value) {
        self.with(|n| n.detail = Some(detail));
    }

    /// Who is deciding, for records beside the trail: `admin:<token name>`.
    pub fn actor(&self) -> String {
        self.with(|n| n.token.clone()).map_or_else(|| "admin".into(), |token| format!("admin:{token}"))
    }

    pub fn note(&self) -> Note {
        self.with(|n| n.clone())
    }

    pub(super) fn by(&self, who: &Principal) {
        self.with(|n| n.token = Some(who.name.clone()));
    }

    fn of(parts: &Parts) -> Trail {
        parts.extensions.get::<Trail>().cloned().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Trail {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Trail::of(parts))
    }
}

/// The scope an operation needs, as a type: `Allowed<scope::Agents>`.
pub trait Needs {
    const SCOPE: Scope;
}

/// The scopes, one type each.
pub mod scope {
    use super::{Needs, Scope};

    macro_rules! scopes {
        ($($name:ident),*) => {$(
            pub struct $name;
            impl Needs for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scopes!(
        Menus,
        CustomersRead,
        CustomersWrite,
        TransfersReverse,
        Agents,
        Float,
        Billers,
        Sms,
        Webhooks,
        Anomalies,
        Merchants,
        Simulator,
        Flags,
        Approvals,
        Proposals,
        Identity
    );
}

/// The caller, whose token the middleware checked, when it grants the scope `S`.
/// Taken first, so a caller without the scope learns nothing of their request's faults.
pub struct Allowed<S>(PhantomData<S>);

impl<S: Needs> FromRequestParts<AppState> for Allowed<S> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AdminError> {
        // The middleware puts the principal here before any handler runs; without one
        // the route is not behind it, which no caller should be able to reach.
        let Some(who) = parts.extensions.get::<Principal>() else {
            return Err(AdminError::Unauthorized("send the header `Authorization: Bearer <token>`"));
        };
        if who.allows(S::SCOPE) {
            Ok(Allowed(PhantomData))
        } else {
            Err(AdminError::Forbidden { token: who.name.clone(), scope: S::SCOPE.name() })
        }
    }
}

/// A value in the path, with the shape the document states for it.
pub trait PathValue {
    const NAME: &'static str;
    const SHAPE: &'static Shape;
    const ABOUT: &'static str;
    const EXAMPLE: &'static str;
    /// Why `given` is refused when it is not of the shape.
    fn refused(given: &str) -> String;
}

/// The path's one value once it has the shape of `P`; the trail names it as the call's
/// target either way.
pub struct InPath<P>(pub String, pub PhantomData<P>);

impl<P: PathValue, S: Send + Sync> FromRequestParts<S> for InPath<P> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        let Path(given) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::Malformed(e.body_text()))?;
        Trail::of(parts).target(given.clone());
        if P::SHAPE.fits(&given) {
            Ok(InPath(given, PhantomData))
        } else {
            Err(AdminError::Malformed(P::refused(&given)))
        }
    }
}

pub(super) fn parameter(
    name: &str,
    place: ParameterIn,
    required: bool,
    schema: impl Into<Schema>,
) -> ParameterBuilder {
    let required = if required { Required::True } else { Required::False };
    ParameterBuilder::new().name(name).parameter_in(place).required(required).schema(Some(schema.into()))
}

impl<P: PathValue> IntoParams for InPath<P> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let example = serde_json::json!(P::EXAMPLE);
        #[allow(deprecated)] // `example` is what OpenAPI 3.1 parameters still carry.
        let param = parameter(P::NAME, ParameterIn::Path, true, P::SHAPE.schema())
            .description(Some(P::ABOUT))
            .example(Some(example));
        vec![param.build()]
    }
}

pub struct AgentNumber;

impl PathValue for AgentNumber {
    const NAME: &'static str = "agent_number";
    const SHAPE: &'static Shape = &shape::AGENT_NUMBER;
    const ABOUT: &'static str = "the agent's number";
    const EXAMPLE: &'static str = crate::money::DEMO_AGENT;
    fn refused(given: &str) -> String {
        format!("`{given}` is not an agent number (5 to 7 digits)")
    }
}

pub struct FlagName;

impl PathValue for FlagName {
    const NAME: &'static str = "name";
    const SHAPE: &'static Shape = &shape::FLAG_NAME;
    const ABOUT: &'static str = "the flag's name";
    const EXAMPLE: &'static str = "merchant_pay";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a flag name (lower-case letters, digits and `_`, starting with a letter)")
    }
}

pub struct CheckId;

impl PathValue for CheckId {
    const NAME: &'static str = "id";
    const SHAPE: &'static Shape = &shape::CHECK_ID;
    const ABOUT: &'static str = "the identity check";
    const EXAMPLE: &'static str = "idc_0123456789abcdef";
    fn refused(given: &str) -> String {
        format!("`{given}` is not an identity check id (idc_ and 16 hex digits)")
    }
}

pub struct BillerCode;

impl PathValue for BillerCode {
    const NAME: &'static str = "code";
    const SHAPE: &'static Shape = &shape::BILLER_CODE;
    const ABOUT: &'static str = "the biller's code";
    const EXAMPLE: &'static str = "KPLC";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a biller code (2 to 12 capital letters or digits)")
    }
}

pub struct MerchantRef;

impl PathValue for MerchantRef {
    const NAME: &'static str = "merchant";
    const SHAPE: &'static Shape = &shape::MERCHANT_ID;
    const ABOUT: &'static str = "the merchant, as onboarding answered";
    const EXAMPLE: &'static str = "MC0000002A";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a merchant (MC and 8 to 16 hex digits)")
    }
}

pub struct WebhookId;

impl PathValue for WebhookId {
    const NAME: &'static str = "id";
    const SHAPE: &'static Shape = &shape::WEBHOOK_ID;
    const ABOUT: &'static str = "the webhook's id, as its subscription answered";
    const EXAMPLE: &'static str = "wh_0123456789abcdef";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a webhook id (wh_ and 16 hex digits)")
    }
}

pub struct DeliveryId;

impl PathValue for DeliveryId {
    const NAME: &'static str = "delivery";
    const SHAPE: &'static Shape = &shape::DELIVERY_ID;
    const ABOUT: &'static str = "the delivery's id, as the delivery list shows it";
    const EXAMPLE: &'static str = "1";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a delivery id (a positive whole number)")
    }
}

pub struct TransferReference;

impl PathValue for TransferReference {
    const NAME: &'static str = "reference";
    const SHAPE: &'static Shape = &shape::REFERENCE;
    const ABOUT: &'static str = "as on the receipt (TX0000002A), or the transfer's id";
    const EXAMPLE: &'static str = "TX1";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a transfer reference; write it as on the receipt, e.g. TX0000002A")
    }
}

/// The customer a call is about, by the number in its path (national or
/// international). Written wrongly, a 400; one no numbering plan has cannot be a
/// customer's (404). The trail names the number once it is one.
pub struct Customer(pub Msisdn);

impl FromRequestParts<AppState> for Customer {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        let Path(given) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::Malformed(e.body_text()))?;
        written_as_number(&given)?;
        let msisdn = Msisdn::parse(&given, state.default_region).map_err(|e| {
            AdminError::NotFound(format!(
                "no customer has `{given}`: it is {e} in any numbering plan the gateway serves"
            ))
        })?;
        Trail::of(parts).target(msisdn.as_e164());
        Ok(Customer(msisdn))
    }
}

/// Why an operator decides as they do (`note`, `reason`), trimmed. The document holds it
/// to 3–200 characters (a 400 past them, as `Schemas::reason` says); one that says
/// nothing but white space keeps to the document and is a 422.
pub(super) fn said_why<'a>(field: &str, given: &'a str) -> Result<&'a str, AdminError> {
    if !(3..=200).contains(&given.chars().count()) {
        return Err(AdminError::Malformed(format!("`{field}` must say why, in 3 to 200 characters")));
    }
    let said = given.trim();
    if said.chars().count() < 3 {
        return Err(AdminError::Unacceptable(format!(
            "`{field}` must say why: at least 3 visible characters"
        )));
    }
    Ok(said)
}

/// 400 unless `given` is written as a phone number (whether a numbering plan has it is
/// the parser's to say).
pub(super) fn written_as_number(given: &str) -> Result<(), AdminError> {
    if shape::MSISDN.fits(given) {
        Ok(())
    } else {
        Err(AdminError::Malformed(format!(
            "`{given}` is not written as a phone number; write it as +254712345678 or 0712345678"
        )))
    }
}

impl IntoParams for Customer {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        #[allow(deprecated)] // `example` is what OpenAPI 3.1 parameters still carry.
        let param = parameter("msisdn", ParameterIn::Path, true, shape::MSISDN.schema())
            .description(Some(
                "the customer's number, +254712345678 or 0712345678 (one no numbering plan has: 404)",
            ))
            .example(Some(serde_json::json!("+254700000001")));
        vec![param.build()]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    limit: Option<i64>,
}

/// `?limit=…`, 1 to `MAX`, `DEFAULT` when left out.
pub struct Limit<const MAX: i64, const DEFAULT: i64>(pub i64);

impl<const MAX: i64, const DEFAULT: i64, S: Send + Sync> FromRequestParts<S> for Limit<MAX, DEFAULT> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        let Query(listing) = Query::<Listing>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::Malformed(e.body_text()))?;
        match listing.limit.unwrap_or(DEFAULT) {
            limit @ 1.. if limit <= MAX => Ok(Limit(limit)),
            limit => Err(AdminError::Malformed(format!("`limit` must be between 1 and {MAX} (got {limit})"))),
        }
    }
}

impl<const MAX: i64, const DEFAULT: i64> IntoParams for Limit<MAX, DEFAULT> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX))
            .default(Some(DEFAULT.into()));
        vec![parameter("limit", ParameterIn::Query, false, schema.build()).build()]
    }
}

/// The `Idempotency-Key` header: a retried call must not act twice.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AdminError> {
        let key = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        match key.filter(|k| shape::IDEMPOTENCY_KEY.fits(k)) {
            Some(key) => Ok(IdempotencyKey(key.to_owned())),
            None => Err(AdminError::Malformed(
                "send an `Idempotency-Key` header (8 to 100 visible characters, e.g. the bank transfer's reference): a retried top-up must not pay twice".into(),
            )),
        }
    }
}

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter("Idempotency-Key", ParameterIn::Header, true, shape::IDEMPOTENCY_KEY.schema()).build()]
    }
}

/// A request body's shape, for the reason a body that is not one is refused with.
pub trait Example {
    const EXAMPLE: &'static str;
    /// Fields, at any depth, that are lists of strings (every other list holds objects).
    const STRING_LISTS: &'static [&'static str] = &[];
    /// Fields that are lists of numbers.
    const NUMBER_LISTS: &'static [&'static str] = &[];
}

/// A JSON body of the type `T`, read once the caller and the path have been judged.
pub struct Body<T> {
    pub asked: T,
    /// As sent, for the trail.
    pub sent: Value,
}

impl<T: DeserializeOwned + Example, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AdminError> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AdminError::TooLarge(e.body_text())
            } else {
                AdminError::Malformed(e.body_text())
            }
        })?;
        let lists = Lists { strings: T::STRING_LISTS, numbers: T::NUMBER_LISTS };
        let sent = json_value(&bytes, T::EXAMPLE, &lists).map_err(AdminError::Malformed)?;
        let asked = serde_json::from_value(sent.clone())
            .map_err(|e| AdminError::Malformed(format!("the body must be {}: {e}", T::EXAMPLE)))?;
        Ok(Body { asked, sent })
    }
}

/// The fields of a body that are lists of strings or of numbers, not of objects.
struct Lists {
    strings: &'static [&'static str],
    numbers: &'static [&'static str],
}

/// A JSON body that a document's objects may describe, or why it is not one.
fn json_value(body: &[u8], example: &str, lists: &Lists) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body must be {example}: {e}"))?;
    // Postgres stores no NUL: refused here, not as an unavailable database.
    if holds_nul(&value) {
        return Err("the body holds a NUL character (\\u0000)".into());
    }
    // Serde would read `["X-Api-Key", "…"]` as the object it stands for; the document
    // says objects, and so does the API. Lists hold objects (an agent's stores).
    let Some(fields) = value.as_object() else {
        return Err(format!("the body must be {example}: objects where the document says objects"));
    };
    let fits = fields.iter().all(|(name, field)| records_only(name, field, lists));
    if !fits {
        return Err(format!(
            "the body must be {example}: objects where the document says objects, strings where it says strings"
        ));
    }
    Ok(value)
}

/// Whether every array in field `name`'s `value` is a list of objects, but those
/// `lists` names, which are lists of strings or of numbers.
fn records_only(name: &str, value: &Value, lists: &Lists) -> bool {
    match value {
        Value::Array(items) if lists.strings.contains(&name) => items.iter().all(Value::is_string),
        Value::Array(items) if lists.numbers.contains(&name) => items.iter().all(Value::is_number),
        Value::Array(items) => items.iter().all(|item| item.is_object() && records_only(name, item, lists)),
        Value::Object(fields) => fields.iter().all(|(name, field)| records_only(name, field, lists)),
        _ => true,
    }
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
