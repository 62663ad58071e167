//! The admin API's OpenAPI document, and the shapes it states that the handlers check
//! with the very same patterns (`crate::admin::shape`): what the document allows, no
//! handler answers with 400.
//!
//! The rule the API keeps: 400 means the request breaks the document (a type, a
//! pattern, a length, a range, an unknown field); a request the document allows but
//! that cannot be done (a number no numbering plan has, a regular expression that does
//! not compile, an address a biller cannot have) is a 404 or a 422 saying why.

use serde_json::{Map, Value, json};

use crate::admin::Scope;
use crate::admin::shape::{
    AGENT_NUMBER, API_KEY, BILLER_CODE, BILLER_URL, HEADER_NAME, IDEMPOTENCY_KEY, KEY_ID, MSISDN, NO_NUL,
    PEM, REFERENCE, SIGNING_SECRET, STORE_NUMBER, Shape,
};
use crate::domain::DISPLAY_TEXT_PATTERN;

fn name(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": DISPLAY_TEXT_PATTERN,
            "description": "one line of visible characters; white space at the ends is trimmed" })
}

fn shaped(shape: &Shape) -> Value {
    json!({ "type": "string", "pattern": shape.pattern })
}

fn path(name: &str, shape: &Shape, description: &str, example: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": shaped(shape), "example": example })
}

/// The document `GET /admin/openapi.json` serves.
pub(super) fn spec() -> Value {
    let error = json!({ "description": "refused, with the reason in `error`",
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    // Every call may be refused for its token (401, 403), a path or query breaking the
    // document (400, checked before any handler), a body too large (413), or the
    // database (503).
    let responses = |ok: (&str, &str), more: &[&str]| -> Value {
        let mut r: Map<String, Value> = ["400", "401", "403", "503"]
            .iter()
            .chain(more)
            .map(|c| ((*c).to_owned(), error.clone()))
            .collect();
        // Bodies are at most MAX_BODY bytes; the listener refuses larger ones unread.
        r.insert(
            "413".into(),
            json!({ "description": format!("the body is larger than {} bytes", crate::http::MAX_BODY) }),
        );
        r.insert(
            ok.0.to_owned(),
            json!({ "description": ok.1, "content": { "application/json": { "schema": { "type": "object" } } } }),
        );
        Value::Object(r)
    };
    let msisdn = path(
        "msisdn",
        &MSISDN,
        "the customer's number, +254712345678 or 0712345678 (one no numbering plan has: 404)",
        "+254700000001",
    );
    let agent_number = path("agent_number", &AGENT_NUMBER, "the agent's number", crate::money::DEMO_AGENT);
    let limit = |max: i64, default: i64| {
        json!({ "name": "limit", "in": "query", "required": false,
                "schema": { "type": "integer", "minimum": 1, "maximum": max, "default": default } })
    };
    let body =
        |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    let free_text = |min: usize, max: usize| json!({ "type": "string", "minLength": min, "maxLength": max, "pattern": NO_NUL.pattern });
    let fee_payer = json!({ "enum": ["customer", "biller"] });
    let account_pattern = json!({ "type": "string", "maxLength": 200, "pattern": NO_NUL.pattern, "format": "regex",
                                  "description": "a regular expression the whole account number must match (one that does not compile: 422)" });
    let base_url = json!({ "type": "string", "maxLength": 500, "pattern": BILLER_URL.pattern,
                           "description": "where the biller answers; a host that cannot be parsed, credentials in the URL, or a link-local, metadata, unspecified or multicast address: 422" });
    let timeout_ms = json!({ "type": "integer", "minimum": 100, "maximum": 30000, "default": 3000 });
    let pem = || json!({ "type": "string", "maxLength": 8000, "pattern": PEM.pattern });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ussd-gateway admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every call needs `Authorization: Bearer <token>` with the scope the operation names, and is written to the audit trail (`admin_audit`), refusals included. Tokens: `ussd-gateway admin token create NAME --scope …`. A request that breaks this document is a 400; one it allows but that cannot be done is a 404, 409 or 422 with the reason.",
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } } },
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/admin/menus/reload": { "post": {
                "summary": "Compile the menus again and serve them if every check passes",
                "x-scope": Scope::Menus.name(),
                "responses": responses(("200", "the menu editions now served"), &["422"]),
            }},
            "/admin/customers/{msisdn}": { "get": {
                "summary": "A customer: profile, PIN state, wallet and latest transfers",
                "x-scope": Scope::CustomersRead.name(),
                "parameters": [msisdn, limit(100, 20)],
                "responses": responses(("200", "the customer"), &["404"]),
            }},
            "/admin/customers/{msisdn}/pin/unlock": { "post": {
                "summary": "Clear the customer's wrong-PIN count and lock",
                "x-scope": Scope::CustomersWrite.name(),
                "parameters": [msisdn],
                "responses": responses(("200", "whether a lock was in force"), &["404"]),
            }},
            "/admin/transfers/{reference}/reverse": { "post": {
                "summary": "Move a transfer's amount (and, if asked, its fee) back, as a new linked transfer with a receipt to each party; at most once",
                "x-scope": Scope::TransfersReverse.name(),
                "parameters": [path("reference", &REFERENCE, "as on the receipt (TX0000002A), or the transfer's id", "TX1")],
                "requestBody": body(json!({
                    "type": "object", "required": ["reason"], "additionalProperties": false,
                    "properties": {
                        "reason": free_text(3, 200),
                        "refund_fee": { "type": "boolean", "default": false },
                    },
                })),
                "responses": responses(("200", "the reversal's reference, amount and fee refunded"), &["404", "409", "422"]),
            }},
            "/admin/agents": { "post": {
                "summary": "Onboard a registered customer's phone as an agent, with float and commission accounts and its stores",
                "x-scope": Scope::Agents.name(),
                "requestBody": body(json!({
                    "type": "object", "required": ["msisdn", "agent_number", "name"], "additionalProperties": false,
                    "properties": {
                        "msisdn": shaped(&MSISDN),
                        "agent_number": shaped(&AGENT_NUMBER),
                        "name": name(40),
                        "stores": { "type": "array", "maxItems": super::agents::MAX_STORES, "items": {
                            "type": "object", "required": ["store_number", "name"], "additionalProperties": false,
                            "properties": { "store_number": shaped(&STORE_NUMBER), "name": name(40) } } },
                    },
                })),
                "responses": responses(("201", "the agent"), &["409", "422"]),
            }},
            "/admin/agents/{agent_number}": { "get": {
                "summary": "An agent: phone, status, float, commission and stores",
                "x-scope": Scope::Agents.name(),
                "parameters": [agent_number.clone()],
                "responses": responses(("200", "the agent"), &["404"]),
            }},
            "/admin/agents/{agent_number}/float": { "post": {
                "summary": "Top up an agent's float from the funding account; the same Idempotency-Key and amount again is the same top-up",
                "x-scope": Scope::Float.name(),
                "parameters": [
                    agent_number,
                    { "name": "Idempotency-Key", "in": "header", "required": true, "schema": shaped(&IDEMPOTENCY_KEY) },
                ],
                "requestBody": body(json!({
                    "type": "object", "required": ["amount"], "additionalProperties": false,
                    "properties": { "amount": { "type": "integer", "minimum": 1, "maximum": super::agents::MAX_TOP_UP, "description": "minor units" } },
                })),
                "responses": responses(("200", "the top-up's reference and the float balance"), &["404", "409"]),
            }},
            "/admin/billers": {
                "post": {
                    "summary": "Register a biller, with a settlement account; it answers the biller protocol at `base_url`",
                    "x-scope": Scope::Billers.name(),
                    "requestBody": body(json!({
                        "type": "object", "additionalProperties": false,
                        "required": ["code", "name", "account_pattern", "account_label", "fee_payer", "base_url"],
                        "properties": {
                            "code": shaped(&BILLER_CODE),
                            "name": name(30),
                            "account_pattern": account_pattern,
                            "account_label": name(30),
                            "fee_payer": fee_payer,
                            "base_url": base_url,
                            "timeout_ms": timeout_ms,
                        },
                    })),
                    "responses": responses(("201", "the biller"), &["409", "422"]),
                },
                "get": {
                    "summary": "The biller catalogue, with settlement balances and payments pending with each biller",
                    "x-scope": Scope::Billers.name(),
                    "responses": responses(("200", "the billers"), &[]),
                },
            },
            "/admin/billers/{code}": { "patch": {
                "summary": "Change a biller's settings, or suspend it (out of the menu, new payments refused; pending ones still reconciled)",
                "x-scope": Scope::Billers.name(),
                "parameters": [path("code", &BILLER_CODE, "the biller's code", "KPLC")],
                "requestBody": body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "name": name(30), "account_pattern": account_pattern,
                        "account_label": name(30), "fee_payer": fee_payer,
                        "base_url": base_url, "timeout_ms": timeout_ms,
                        "status": { "enum": ["active", "suspended"] },
                    },
                })),
                "responses": responses(("200", "the biller"), &["404", "422"]),
            }},
            "/admin/billers/{code}/credentials": { "put": {
                "summary": "Replace a biller's credentials (each optional; `{}` clears them), sealed at rest and never shown again: an API key header, HMAC request signing, a client certificate for mutual TLS, the biller's certificate authority",
                "x-scope": Scope::Billers.name(),
                "parameters": [path("code", &BILLER_CODE, "the biller's code", "KPLC")],
                "requestBody": body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "api_key": { "type": ["object", "null"], "required": ["header", "value"], "additionalProperties": false,
                            "properties": { "header": shaped(&HEADER_NAME), "value": shaped(&API_KEY) },
                            "description": "a header the gateway sets itself (Host, Content-Type, X-Gateway-…): 422" },
                        "hmac": { "type": ["object", "null"], "required": ["key_id", "secret"], "additionalProperties": false,
                            "properties": { "key_id": shaped(&KEY_ID), "secret": shaped(&SIGNING_SECRET) } },
                        "mtls": { "type": ["object", "null"], "required": ["certificate", "private_key"], "additionalProperties": false,
                            "properties": { "certificate": pem(), "private_key": pem() },
                            "description": "a certificate and key that do not make a TLS identity: 422" },
                        "ca_certificate": { "anyOf": [pem(), { "type": "null" }] },
                    },
                })),
                "responses": responses(("200", "which credentials are set (the header's name, the signing key's id), never their values"), &["404", "422"]),
            }},
            "/admin/sms/dead": { "get": {
                "summary": "Subscribers' messages that could not be answered after every try, latest first, with the reason (never their text); each sender was told to check their balance before trying again",
                "x-scope": Scope::Sms.name(),
                "parameters": [limit(500, 50)],
                "responses": responses(("200", "the dead letters"), &[]),
            }},
        },
    })
}
