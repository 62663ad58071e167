//! A partner's credentials: an API key header, HMAC request signing, a client
//! certificate for mutual TLS and the partner's own certificate authority. Stored
//! sealed (`billers.credentials_sealed`), never shown: operators see which are set.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::shape::Schemas;

use crate::money::crypto::Place;

#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// A header sent with every call: `X-Api-Key: …` (a header the gateway sets itself —
    /// Host, Content-Type, X-Gateway-…: 422).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// Every call signed (see `client.rs`), under a key the partner knows by `key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<Signing>,
    /// The certificate and key the gateway presents when the partner asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<ClientCertificate>,
    /// The authority that signed the partner's server certificate, when it is not a
    /// public one (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = Schemas::pem_or_null)]
    pub ca_certificate: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    #[schema(schema_with = Schemas::header_name)]
    pub header: String,
    #[schema(schema_with = Schemas::api_key)]
    pub value: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    #[schema(schema_with = Schemas::key_id)]
    pub key_id: String,
    #[schema(schema_with = Schemas::signing_secret)]
    pub secret: String,
}

/// A certificate and key that do not make a TLS identity: 422.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// PEM: the certificate, then any intermediates.
    #[schema(schema_with = Schemas::pem)]
    pub certificate: String,
    /// PEM (PKCS#8, PKCS#1 or SEC1).
    #[schema(schema_with = Schemas::pem)]
    pub private_key: String,
}

impl Credentials {
    /// Which are set, with the names that are not secret (the header, the key id).
    pub fn summary(&self) -> Value {
        json!({
            "api_key": self.api_key.as_ref().map(|k| k.header.as_str()),
            "hmac": self.hmac.as_ref().map(|s| s.key_id.as_str()),
            "mtls": self.mtls.is_some(),
            "ca_certificate": self.ca_certificate.is_some(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.hmac.is_none() && self.mtls.is_none() && self.ca_certificate.is_none()
    }
}

/// Where a biller's credentials are sealed.
pub fn place(code: &str) -> Place<'_> {
    Place { table: "billers", column: "credentials_sealed", row: code }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.summary())
    }
}
