//! The admin API's OpenAPI document: generated from the handlers (their paths, scopes,
//! parameters and request types, whose schemas come from the patterns the checks use,
//! `crate::domain::shape`), finished here with what every operation shares.
//!
//! The rule the API keeps: 400 means the request breaks the document (a type, a
//! pattern, a length, a range, an unknown field); a request the document allows but
//! that cannot be done (a number no numbering plan has, a regular expression that does
//! not compile, an address a biller cannot have) is a 404 or a 422 saying why.

use serde_json::{Value, json};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{PartialSchema, ToSchema};

use super::error::Refusal;

/// Every call may be refused for its token (401, 403), a path, query or body breaking
/// the document (400), or the database (503).
const SHARED: [&str; 4] = ["400", "401", "403", "503"];

/// The document `GET /admin/openapi.json` serves.
pub(super) fn finish(mut document: OpenApi) -> Value {
    document.info.title = "ussd-gateway admin API".into();
    document.info.version = env!("CARGO_PKG_VERSION").into();
    document.info.description = Some(
        "Every call needs `Authorization: Bearer <token>` with the scope the operation names (`x-scope`), and is written to the audit trail (`admin_audit`), refusals included. Tokens: `ussd-gateway admin token create NAME --scope …`. A request that breaks this document is a 400; one it allows but that cannot be done is a 404, 409 or 422 with the reason.".into(),
    );
    document.info.license = None;
    document.info.contact = None;
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components.schemas.insert(Refusal::name().into_owned(), Refusal::schema());
    document.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    let mut document = serde_json::to_value(document).expect("a document serializes");
    let refusal = json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{}", Refusal::name()) } } });
    let paths = document["paths"].as_object_mut().into_iter().flat_map(|p| p.values_mut());
    for operation in
        paths.flat_map(|methods| methods.as_object_mut().into_iter().flat_map(|m| m.values_mut()))
    {
        let responses = operation["responses"].as_object_mut().expect("every operation has responses");
        for status in SHARED {
            responses
                .entry(status)
                .or_insert_with(|| json!({ "description": "refused, with the reason in `error`" }));
        }
        for (status, response) in responses.iter_mut() {
            if !status.starts_with('2') && response.get("content").is_none() {
                response["content"] = refusal.clone();
            }
        }
        // The admin listener refuses larger bodies unread.
        responses.insert(
            "413".into(),
            json!({ "description": format!("the body is larger than {} bytes", crate::http::MAX_ADMIN_BODY) }),
        );
    }
    document
}
