//! The admin API's merchant endpoints: onboard a till merchant or a paybill, change or
//! suspend one, look them up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::approvals::Guard;
use super::extract::{Allowed, Body, Example, InPath, Limit, MerchantRef, Trail, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::merchants::{self, MerchantChange, NewMerchant, Onboarding};
use crate::admin::proposals::Subject;

impl Example for NewMerchant {
    const STRING_LISTS: &'static [&'static str] = &["tills"];
    const EXAMPLE: &'static str = r#"{"kind": "till", "legal_name": "Mama Mboga Groceries Ltd", "display_name": "Mama Mboga", "owner": "+254712345678", "notify_msisdn": "+254712345678", "fee_class": "standard", "stores": [{"store_number": "1001", "name": "Westlands", "tills": ["512345", "512346"]}]}, or {"kind": "paybill", "business_number": "888880", "account_pattern": "[0-9]{4,10}", "account_label": "account number", "fee_payer": "customer", …}"#;
}

impl Example for MerchantChange {
    const EXAMPLE: &'static str = r#"{"status": "suspended"}, or any of legal_name, display_name, notify_msisdn, language, fee_class, and for a paybill fee_payer, account_pattern, account_label"#;
}

/// `POST /admin/merchants`: onboards a till merchant (stores and tills) or a paybill
/// (a business number), with a settlement account.
#[utoipa::path(post, path = "/admin/merchants", tag = "merchants",
    summary = "Onboard a merchant: a till merchant with its stores and tills (Buy Goods), or a paybill with its business number; each with a settlement account",
    extensions(("x-scope" = json!("merchants"))),
    request_body = NewMerchant,
    responses(
        (status = 201, description = "the merchant", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`); the secrets its answer shows once go to the approver, and the proposal keeps the answer without them", body = Object),
        (status = 409, description = "the business number or a till is taken"),
        (status = 422, description = "the owner is no registered customer, a number no numbering plan has, a field the kind does not take or lacks, a pattern that does not compile, a fee class that does not exist, a till or store listed twice"),
    ))]
pub(super) async fn onboard(
    _: Allowed<scope::Merchants>,
    State(state): State<AppState>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<NewMerchant>,
) -> Result<Answer, AdminError> {
    merchants::onboarding_problem(&asked, state.default_region, state.demo)?;
    if let Some(proposed) = guard.propose(&state, &trail, Some(sent.clone())).await? {
        return Ok(proposed);
    }
    trail.detail(sent);
    let money = state.money();
    let at = Onboarding {
        region: state.default_region,
        currency: money.currency(),
        vault: money.vault(),
        demo: state.demo,
    };
    let merchant = merchants::onboard(state.pool(), &asked, at).await?;
    if let Some(reference) = merchant["merchant"].as_str() {
        trail.target(reference.to_owned());
    }
    Ok((StatusCode::CREATED, Json(merchant)))
}

/// `GET /admin/merchants`: the merchants, newest first, with settlement balances.
#[utoipa::path(get, path = "/admin/merchants", tag = "merchants",
    summary = "The merchants, newest first, with their stores, tills and settlement balances",
    extensions(("x-scope" = json!("merchants"))),
    params(Limit<500, 50>),
    responses((status = 200, description = "the merchants", body = Object)))]
pub(super) async fn list(
    _: Allowed<scope::Merchants>,
    State(state): State<AppState>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    Ok(ok(merchants::list(state.reads().await, limit).await?))
}

/// `GET /admin/merchants/{merchant}`: one merchant.
#[utoipa::path(get, path = "/admin/merchants/{merchant}", tag = "merchants",
    summary = "A merchant: how it is paid, its stores and tills, its settlement balance",
    extensions(("x-scope" = json!("merchants"))),
    params(InPath<MerchantRef>),
    responses((status = 200, description = "the merchant", body = Object), (status = 404, description = "no such merchant")))]
pub(super) async fn show(
    _: Allowed<scope::Merchants>,
    State(state): State<AppState>,
    InPath(reference, _): InPath<MerchantRef>,
) -> Result<Answer, AdminError> {
    Ok(ok(merchants::show(state.reads().await, &reference).await?))
}

/// `PATCH /admin/merchants/{merchant}`: changes what is sent, keeps the rest;
/// `{"status": "suspended"}` stops its payments.
#[utoipa::path(patch, path = "/admin/merchants/{merchant}", tag = "merchants",
    summary = "Change a merchant's settings, or suspend it (new payments refused)",
    extensions(("x-scope" = json!("merchants"))),
    params(InPath<MerchantRef>),
    request_body = MerchantChange,
    responses(
        (status = 200, description = "the merchant", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no such merchant"),
        (status = 422, description = "a paybill's setting for a till merchant, a number no numbering plan has, a pattern that does not compile, a fee class that does not exist"),
    ))]
pub(super) async fn change(
    _: Allowed<scope::Merchants>,
    State(state): State<AppState>,
    InPath(reference, _): InPath<MerchantRef>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<MerchantChange>,
) -> Result<Answer, AdminError> {
    merchants::change_checked(&asked, state.default_region, state.demo)?;
    let absent = AdminError::NotFound(format!("no merchant `{reference}`"));
    if let Some(proposed) = guard
        .propose_on(&state, &trail, Some(sent.clone()), Some((Subject::Merchant(&reference), absent)))
        .await?
    {
        return Ok(proposed);
    }
    trail.detail(sent);
    let money = state.money();
    let at = Onboarding {
        region: state.default_region,
        currency: money.currency(),
        vault: money.vault(),
        demo: state.demo,
    };
    Ok(ok(merchants::change(state.pool(), &reference, &asked, at).await?))
}
