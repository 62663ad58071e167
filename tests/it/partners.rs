//! Partner credentials end to end: set through the admin API, sealed at rest and never
//! shown again; every call to the biller carries its API key and a signature it can
//! check; and a biller that requires a client certificate (mutual TLS, certificates
//! made here) is reached only with the right one.

use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use ussd_gateway::domain::Amount;
use ussd_gateway::outcome::Outcome;

const API_KEY: &str = "kplc-live-7f3a9c2e";
const SECRET: &str = "a-shared-signing-secret-0123456789";

/// What the biller saw of each call: its headers and body.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, String)>>>);

async fn validate(State(seen): State<Seen>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    seen.0.lock().unwrap().push((headers, body));
    (StatusCode::OK, Json(json!({ "name": "JOHN KAMAU" })))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature a biller computes to check a call, as `client.rs` documents it.
fn expected_signature(timestamp: &str, method: &str, path: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(
        format!("{timestamp}\n{method}\n{path}\n{}", hex(&Sha256::digest(body.as_bytes()))).as_bytes(),
    );
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn calls_carry_the_api_key_and_a_signature_and_secrets_are_never_shown(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let seen = Seen::default();
    let biller = Router::new().route("/kplc/validate", post(validate)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/kplc", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, biller).into_future());
    register_biller(&pool, "KPLC", &url, 2000).await;
    let desk = ussd_gateway::admin::create(&pool, "biller-desk", &["billers".into()]).await.unwrap();

    let put = |body: Value| {
        app.admin("PUT", "/admin/billers/KPLC/credentials", Some(&desk), None, Some(body.to_string()))
    };
    for (body, status, says) in [
        (
            json!({ "api_key": { "header": "X Api", "value": API_KEY } }),
            StatusCode::BAD_REQUEST,
            "header name",
        ),
        (
            json!({ "api_key": { "header": "Host", "value": API_KEY } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sets itself",
        ),
        (json!({ "hmac": { "key_id": "k1", "secret": "short" } }), StatusCode::BAD_REQUEST, "16 to 256"),
        (
            json!({ "mtls": { "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot be used",
        ),
        (json!({ "password": "x" }), StatusCode::BAD_REQUEST, "unknown field"),
        // Serde alone would take these arrays for the objects they stand for.
        (json!([]), StatusCode::BAD_REQUEST, "objects where the document says objects"),
        (json!({ "api_key": ["X-Api-Key", API_KEY] }), StatusCode::BAD_REQUEST, "objects where"),
    ] {
        let (got, answer) = put(body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, _) =
        app.admin("PUT", "/admin/billers/NOPE/credentials", Some(&desk), None, Some("{}".into())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, set) = put(json!({
        "api_key": { "header": "X-Api-Key", "value": API_KEY },
        "hmac": { "key_id": "gw-2026", "secret": SECRET },
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        set["credentials"],
        json!({ "api_key": "X-Api-Key", "hmac": "gw-2026", "mtls": false, "ca_certificate": false })
    );

    let bills = app.state.gateway.money().bills();
    let checked = bills.validate("KPLC", "12345678901", Amount::from_minor(500_00).unwrap()).await.unwrap();
    assert_eq!(checked.map(|c| c.outcome), Some(Outcome::Ok));
    let (headers, body) = seen.0.lock().unwrap().pop().unwrap();
    assert_eq!(headers["x-api-key"], API_KEY);
    assert_eq!(headers["x-gateway-key-id"], "gw-2026");
    let timestamp = headers["x-gateway-timestamp"].to_str().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(timestamp.parse().unwrap()) < 60, "a current timestamp");
    assert_eq!(
        headers["x-gateway-signature"],
        expected_signature(timestamp, "POST", "/kplc/validate", &body)
    );
    // Altered in transit, the body no longer matches the signature.
    assert_ne!(
        headers["x-gateway-signature"],
        expected_signature(timestamp, "POST", "/kplc/validate", &body.replace("123", "999"))
    );

    // Never shown again, never in clear at rest or in the audit trail.
    let (_, all) = app.admin("GET", "/admin/billers", Some(&desk), None, None).await;
    assert_eq!(all["billers"][0]["credentials"], true);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT credentials_sealed FROM billers WHERE code = 'KPLC'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let trail: Vec<String> = sqlx::query_scalar("SELECT coalesce(detail::text, '') FROM admin_audit")
        .fetch_all(&pool)
        .await
        .unwrap();
    for secret in [API_KEY, SECRET] {
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert!(!all.to_string().contains(secret) && !set.to_string().contains(secret));
        assert!(trail.iter().all(|t| !t.contains(secret)), "{trail:?}");
    }

    // Cleared: calls go out bare again.
    let (status, cleared) = put(json!({})).await;
    assert_eq!((status, &cleared["credentials"]["api_key"]), (StatusCode::OK, &Value::Null));
    bills.validate("KPLC", "12345678901", Amount::from_minor(500_00).unwrap()).await.unwrap();
    let (headers, _) = seen.0.lock().unwrap().pop().unwrap();
    assert!(!headers.contains_key("x-api-key") && !headers.contains_key("x-gateway-signature"));
}

/// A certificate authority and what it signed, all made for this test.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki { ca_pem: ca.pem(), server: signed(vec!["127.0.0.1".into()]), client: signed(vec!["gateway".into()]) }
}

/// A biller on TLS that requires a client certificate signed by `pki`'s authority.
async fn mutual_tls_biller(pki: &Pki) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/validate", post(validate)).with_state(Seen::default());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A caller without an acceptable certificate fails the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        tower::ServiceExt::oneshot(app.clone(), request.map(axum::body::Body::new))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    url
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_biller_that_requires_a_client_certificate_is_reached_only_with_the_right_one(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let pki = pki();
    let url = mutual_tls_biller(&pki).await;
    register_biller(&pool, "TLS", &url, 2000).await;
    let desk = ussd_gateway::admin::create(&pool, "biller-desk", &["billers".into()]).await.unwrap();
    let put = |body: Value| {
        app.admin("PUT", "/admin/billers/TLS/credentials", Some(&desk), None, Some(body.to_string()))
    };
    let bills = app.state.gateway.money().bills();
    let ask = || async {
        bills
            .validate("TLS", "12345678901", Amount::from_minor(100_00).unwrap())
            .await
            .unwrap()
            .map(|c| c.outcome)
    };

    // Trusting the biller's authority but presenting no certificate: no answer.
    let (status, _) = put(json!({ "ca_certificate": pki.ca_pem })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ask().await, None, "the handshake is refused without a client certificate");

    // A certificate from another authority: refused too.
    let stranger = self::pki();
    let (status, _) = put(json!({
        "ca_certificate": pki.ca_pem,
        "mtls": { "certificate": stranger.client.0, "private_key": stranger.client.1 },
    }))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ask().await, None, "a certificate the biller does not trust");

    // The right one: answered.
    let (status, set) = put(json!({
        "ca_certificate": pki.ca_pem,
        "mtls": { "certificate": pki.client.0, "private_key": pki.client.1 },
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["credentials"]["mtls"], true);
    assert_eq!(ask().await, Some(Outcome::Ok));
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT credentials_sealed FROM billers WHERE code = 'TLS'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !sealed.windows(20).any(|w| pki.client.1.as_bytes().windows(20).any(|k| k == w)),
        "the key is sealed"
    );
}
