//! The admin API's feature flags: create, change, list; every replica decides by a
//! change within a second.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::approvals::Guard;
use super::extract::{Allowed, Body, Example, FlagName, InPath, Trail, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::flags::{self, FlagChange, NewFlag};

impl Example for NewFlag {
    const EXAMPLE: &'static str = r#"{"name": "merchant_pay", "enabled": true, "rollout": 10, "description": "…"}, and any of numbers_in, numbers_out, channels_in, channels_out"#;
    const STRING_LISTS: &'static [&'static str] =
        &["numbers_in", "numbers_out", "channels_in", "channels_out"];
}

impl Example for FlagChange {
    const EXAMPLE: &'static str = r#"{"enabled": false}, or any of description, rollout (null: everyone), numbers_in, numbers_out, channels_in, channels_out"#;
    const STRING_LISTS: &'static [&'static str] =
        &["numbers_in", "numbers_out", "channels_in", "channels_out"];
}

/// `POST /admin/flags`: creates a flag.
#[utoipa::path(post, path = "/admin/flags", tag = "flags",
    summary = "Create a feature flag: on or off, for a share of subscribers (a stable hash of the flag's name and their number), with numbers and channels always in or out (out wins; off is off for everyone). Every replica decides new sessions by it within a second",
    extensions(("x-scope" = json!("flags"))),
    request_body = NewFlag,
    responses(
        (status = 201, description = "the flag", body = Object),
        (status = 409, description = "a flag has this name"),
        (status = 422, description = "a number no numbering plan has"),
    ))]
pub(super) async fn create(
    _: Allowed<scope::Flags>,
    State(state): State<AppState>,
    trail: Trail,
    Body { asked: new, sent }: Body<NewFlag>,
) -> Result<Answer, AdminError> {
    trail.target(new.name.clone());
    trail.detail(sent);
    let flag = flags::create(state.pool(), &new, state.default_region).await?;
    Ok((StatusCode::CREATED, Json(json!(flag))))
}

/// `PATCH /admin/flags/{name}`: changes what is sent, keeps the rest.
#[utoipa::path(patch, path = "/admin/flags/{name}", tag = "flags",
    summary = "Change a feature flag (a list sent replaces the list held; `\"rollout\": null` is everyone); sessions already running keep the menus they started with, ops it switches off stop at once",
    extensions(("x-scope" = json!("flags"))),
    params(InPath<FlagName>),
    request_body = FlagChange,
    responses(
        (status = 200, description = "the flag", body = Object),
        (status = 202, description = "the flag is `sensitive` and four eyes are on (FOUR_EYES): the change is proposed, and is made when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no flag has this name"),
        (status = 422, description = "a number no numbering plan has"),
    ))]
pub(super) async fn change(
    _: Allowed<scope::Flags>,
    State(state): State<AppState>,
    InPath(name, _): InPath<FlagName>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<FlagChange>,
) -> Result<Answer, AdminError> {
    flags::problem(&asked)?;
    let sensitive = flags::sensitive(state.pool(), &name).await?;
    let sensitive = sensitive.ok_or_else(|| flags::FlagError::Unknown(name.clone()))?;
    if sensitive && let Some(proposed) = guard.propose(&state, &trail, Some(sent.clone())).await? {
        return Ok(proposed);
    }
    trail.detail(sent);
    Ok(ok(json!(flags::change(state.pool(), &name, &asked, state.default_region).await?)))
}

/// `GET /admin/flags`: every flag, with the menus that use it, and the flags menus
/// declare that no row sets (their default holds).
#[utoipa::path(get, path = "/admin/flags", tag = "flags",
    summary = "Every feature flag, with the menus that use it; and the flags menus declare that nobody has set, with the default that holds for them",
    extensions(("x-scope" = json!("flags"))),
    responses((status = 200, description = "the flags", body = Object)))]
pub(super) async fn list(
    _: Allowed<scope::Flags>,
    State(state): State<AppState>,
) -> Result<Answer, AdminError> {
    let set = crate::flags::list(state.pool()).await?;
    let bundle = state.gateway.menus();
    let mut declared: BTreeMap<&str, (bool, Vec<&str>)> = BTreeMap::new();
    for menu in bundle.menus() {
        for flag in &menu.flags {
            declared
                .entry(flag.name.as_str())
                .or_insert((flag.default, Vec::new()))
                .1
                .push(menu.service.as_str());
        }
    }
    let flags: Vec<_> = set
        .iter()
        .map(|f| {
            let menus = declared.get(f.name.as_str()).map(|(_, m)| m.clone()).unwrap_or_default();
            let mut shown = json!(f);
            shown["menus"] = json!(menus);
            shown
        })
        .collect();
    let unset: Vec<_> = declared
        .iter()
        .filter(|(name, _)| !set.iter().any(|f| f.name == **name))
        .map(|(name, (default, menus))| json!({ "name": name, "default": default, "menus": menus }))
        .collect();
    Ok(ok(json!({ "flags": flags, "unset": unset })))
}
