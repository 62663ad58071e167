//! The admin API's customer endpoints: look one up, unlock their PIN, reverse a transfer.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::approvals::Guard;
use super::extract::{
    Allowed, Body, Customer, Example, InPath, Limit, Trail, TransferReference, said_why, scope,
};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::customers;
use crate::admin::proposals::Subject;
use crate::domain::shape::Schemas;
use crate::money::Reversed;

/// `GET /admin/customers/{msisdn}?limit=20`: profile, PIN state, wallet and the latest
/// transfers.
#[utoipa::path(get, path = "/admin/customers/{msisdn}", tag = "customers",
    summary = "A customer: profile, PIN state, wallet and latest transfers",
    extensions(("x-scope" = json!("customers:read"))),
    params(Customer, Limit<100, 20>),
    responses((status = 200, description = "the customer", body = Object), (status = 404, description = "no customer has this number")))]
pub(super) async fn show(
    _: Allowed<scope::CustomersRead>,
    State(state): State<AppState>,
    Customer(msisdn): Customer,
    Limit(limit): Limit<100, 20>,
) -> Result<Answer, AdminError> {
    match customers::lookup(state.reads().await, &msisdn, limit).await? {
        Some(found) => Ok(ok(found)),
        None => Err(AdminError::NotFound("no customer has this number".into())),
    }
}

/// `POST /admin/customers/{msisdn}/pin/unlock`: clears the wrong-PIN count and any lock.
#[utoipa::path(post, path = "/admin/customers/{msisdn}/pin/unlock", tag = "customers",
    summary = "Clear the customer's wrong-PIN count and lock",
    extensions(("x-scope" = json!("customers:write"))),
    params(Customer),
    responses(
        (status = 200, description = "whether a lock was in force", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no customer has this number"),
    ))]
pub(super) async fn unlock_pin(
    _: Allowed<scope::CustomersWrite>,
    State(state): State<AppState>,
    Customer(msisdn): Customer,
    guard: Guard,
    trail: Trail,
) -> Result<Answer, AdminError> {
    let subject = Some((
        Subject::Customer(msisdn.as_e164()),
        AdminError::NotFound("no customer has this number".into()),
    ));
    if let Some(proposed) = guard.propose_on(&state, &trail, None, subject).await? {
        return Ok(proposed);
    }
    match customers::unlock_pin(state.pool(), &msisdn).await? {
        Some(done) => {
            trail.detail(done.clone());
            Ok(ok(done))
        }
        None => Err(AdminError::NotFound("no customer has this number".into())),
    }
}

/// Why a transfer is moved back, and whether its fee goes back too.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReverseRequest {
    #[schema(schema_with = Schemas::reason)]
    reason: String,
    #[serde(default)]
    #[schema(default = false)]
    refund_fee: bool,
}

impl Example for ReverseRequest {
    const EXAMPLE: &'static str = r#"{"reason": "…", "refund_fee": false}"#;
}

/// `POST /admin/transfers/{reference}/reverse`: moves a transfer's amount back, as a
/// new linked transfer with a receipt to each party; at most once.
#[utoipa::path(post, path = "/admin/transfers/{reference}/reverse", tag = "transfers",
    summary = "Move a transfer's amount (and, if asked, its fee) back, as a new linked transfer with a receipt to each party; at most once",
    extensions(("x-scope" = json!("transfers:reverse"))),
    params(InPath<TransferReference>),
    request_body = ReverseRequest,
    responses(
        (status = 200, description = "the reversal's reference, amount and fee refunded", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no transfer has this reference"),
        (status = 409, description = "reversed before: the earlier reversal's reference, amount and fee refunded; or its sender asked for it back, and the request decides"),
        (status = 422, description = "not a posted movement between two parties, or the payee no longer has the amount"),
    ))]
pub(super) async fn reverse(
    _: Allowed<scope::TransfersReverse>,
    State(state): State<AppState>,
    InPath(reference, _): InPath<TransferReference>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<ReverseRequest>,
) -> Result<Answer, AdminError> {
    let reason = said_why("reason", &asked.reason)?;
    let not_found = || AdminError::NotFound("no transfer has this reference".into());
    // Written as a reference but naming no transfer there can be (TX0, or past i64).
    let original = crate::money::parse_reference(&reference).ok_or_else(not_found)?;
    if crate::money::reversals::open_on(state.pool(), original).await? {
        return Err(AdminError::Conflict(format!(
            "its sender asked for it back: decide the request at /admin/reversal-requests/{reference}"
        )));
    }
    if let Some(proposed) =
        guard.propose_on(&state, &trail, Some(sent), Some((Subject::Transfer(original), not_found()))).await?
    {
        return Ok(proposed);
    }
    let done = crate::money::reverse(state.pool(), original, asked.refund_fee, reason).await?;
    let reversal = done.transfer_id.map(crate::money::reference);
    trail.detail(json!({ "reason": reason, "refund_fee": asked.refund_fee, "reversal": reversal }));
    match done.outcome {
        Reversed::Done => Ok(ok(json!({
            "reversal": reversal, "amount": done.amount, "fee_refunded": done.fee_refunded,
        }))),
        Reversed::Already => {
            Err(AdminError::Reversed { reversal, amount: done.amount, fee_refunded: done.fee_refunded })
        }
        Reversed::NotFound => Err(not_found()),
        Reversed::NotReversible => Err(AdminError::Unacceptable(
            "only a posted movement between two parties can be reversed (not a deposit, a merchant's withdrawal, a rejected transfer or a reversal)".into(),
        )),
        Reversed::InsufficientFunds => {
            Err(AdminError::Unacceptable("the payee no longer has the amount; nothing was moved".into()))
        }
    }
}
