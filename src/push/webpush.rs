//! Web Push delivery (RFC 8030): message encryption (RFC 8291, `aes128gcm` of RFC 8188),
//! VAPID (RFC 8292) and the HTTP POST to the push service.
//!
//! Invariants:
//! - the VAPID key is created once and kept in the store (`META_VAPID_KEY`), so every node
//!   and every restart signs with the key clients registered with;
//! - every message gets a fresh ephemeral key and salt (RFC 8291 §3.4: reuse would leak);
//! - a delivery never hangs: connect, TLS and the request each have a deadline.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use bytes::Bytes;
use hkdf::Hkdf;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{PublicKey, SecretKey};
use rand::RngCore as _;
use sha2::Sha256;

use crate::store::{Store, StoreError, StoreResult};

const BASE64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 8188 §2: the record size we declare; one record holds any StateChange we send.
const RECORD_SIZE: u32 = 4096;
/// The largest payload that fits one record (RFC 8291 §4: push services accept 4096 octets).
pub const MAX_PLAINTEXT: usize = 3993;

/// Random 32 bytes that form a valid P-256 scalar (rejection sampling; practically one try).
fn random_secret_key() -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// The server's VAPID key pair (RFC 8292).
#[derive(Clone)]
pub struct VapidKey {
    secret: SecretKey,
    subject: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Reads the key from the store, creating it on first use (concurrent creators agree:
    /// the transaction re-reads and only writes when absent).
    pub async fn load_or_create(store: &Store, subject: &str) -> StoreResult<VapidKey> {
        let candidate = random_secret_key().to_bytes().to_vec();
        let stored = store
            .transact(|tx| {
                let candidate = candidate.clone();
                Box::pin(async move {
                    let key = crate::store::keys::META_VAPID_KEY;
                    if let Some(existing) = tx.get(key).await? {
                        return Ok(existing);
                    }
                    tx.set(key, &candidate)?;
                    Ok(candidate)
                })
            })
            .await?;
        let secret = SecretKey::from_slice(&stored)
            .map_err(|_| StoreError::corrupt("the stored VAPID key is not a P-256 scalar"))?;
        Ok(VapidKey {
            secret,
            subject: subject.to_owned(),
        })
    }

    /// The uncompressed public key, base64url: the `applicationServerKey` browsers need
    /// (RFC 8292 §3.2 `k`).
    pub fn public_key_base64(&self) -> String {
        BASE64URL.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// `Authorization: vapid t=..., k=...` for a push service at `audience` (its origin).
    pub fn authorization(&self, audience: &str, now_unix: i64) -> String {
        let header = BASE64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        // RFC 8292 §2: exp at most 24 hours ahead.
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now_unix + 12 * 3600,
            "sub": self.subject,
        });
        let claims = BASE64URL.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signing_key = p256::ecdsa::SigningKey::from(&self.secret);
        let signature: p256::ecdsa::Signature = signing_key.sign(signing_input.as_bytes());
        let token = format!("{signing_input}.{}", BASE64URL.encode(signature.to_bytes()));
        format!("vapid t={token}, k={}", self.public_key_base64())
    }
}

/// A subscription's keys (RFC 8620 §7.2 `keys`, RFC 8291 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeys {
    /// The user agent's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("p256dh is not base64url of an uncompressed P-256 public key")]
    P256dh,
    #[error("auth is not base64url of 16 bytes")]
    Auth,
}

impl ClientKeys {
    /// From the base64url strings of the JMAP object (padding tolerated).
    pub fn parse(p256dh: &str, auth: &str) -> Result<ClientKeys, KeysError> {
        let decode = |text: &str| BASE64URL.decode(text.trim_end_matches('='));
        let p256dh = decode(p256dh).map_err(|_| KeysError::P256dh)?;
        if p256dh.len() != 65 || PublicKey::from_sec1_bytes(&p256dh).is_err() {
            return Err(KeysError::P256dh);
        }
        let auth = decode(auth).map_err(|_| KeysError::Auth)?;
        if auth.len() != 16 {
            return Err(KeysError::Auth);
        }
        Ok(ClientKeys { p256dh, auth })
    }
}

fn hkdf_expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut okm = [0u8; N];
    // N ≤ 32 here, far below HKDF-SHA256's limit of 255 × 32 bytes.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut okm);
    okm
}

/// Encrypts `plaintext` for `keys` as one `aes128gcm` record (RFC 8291 §3–§4).
pub fn encrypt(keys: &ClientKeys, plaintext: &[u8]) -> Result<Vec<u8>, KeysError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    encrypt_with(keys, plaintext, &random_secret_key(), salt)
}

fn encrypt_with(
    keys: &ClientKeys,
    plaintext: &[u8],
    ephemeral: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, KeysError> {
    let user_agent = PublicKey::from_sec1_bytes(&keys.p256dh).map_err(|_| KeysError::P256dh)?;
    let server_public = ephemeral.public_key().to_encoded_point(false);
    let server_public = server_public.as_bytes();
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), user_agent.as_affine());
    // RFC 8291 §3.4: IKM from the ECDH secret, keyed by the auth secret.
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(&keys.p256dh);
    key_info.extend_from_slice(server_public);
    let ikm: [u8; 32] = hkdf_expand(&keys.auth, shared.raw_secret_bytes(), &key_info);
    // RFC 8188 §2.2–§2.3: content key and nonce from the salt.
    let cek: [u8; 16] = hkdf_expand(&salt, &ikm, b"Content-Encoding: aes128gcm\0");
    let nonce: [u8; 12] = hkdf_expand(&salt, &ikm, b"Content-Encoding: nonce\0");
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    // RFC 8188 §2: 0x02 marks the last (here, only) record.
    record.push(2);
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).map_err(|_| KeysError::Auth)?;
    let ciphertext = cipher
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| KeysError::Auth)?;
    // RFC 8188 §2.1 header: salt, record size, key id (the server's public key).
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + ciphertext.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(server_public);
    body.extend_from_slice(&ciphertext);
    Ok(body)
}

/// What a push service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx.
    Accepted,
    /// 404 or 410 (RFC 8030 §7.3): the subscription is gone; delete it.
    Gone,
    /// 429, 5xx or a network failure: retry later.
    Retry,
    /// Any other answer (a 4xx about this message): retrying would not help.
    Rejected(u16),
}

/// How long one delivery attempt may take, all steps together.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// POSTs one push message (RFC 8030 §5). `keys`: encrypted with RFC 8291; otherwise the JSON
/// goes as is (RFC 8620 §7.2 allows it for subscriptions without keys).
pub async fn deliver(
    url: &str,
    json: &[u8],
    keys: Option<&ClientKeys>,
    vapid: &VapidKey,
    now_unix: i64,
) -> Delivery {
    let Ok(uri) = url.parse::<Uri>() else {
        return Delivery::Rejected(0);
    };
    let (body, content_encoding, content_type) = match keys {
        Some(keys) => match encrypt(keys, json) {
            Ok(body) => (body, Some("aes128gcm"), "application/octet-stream"),
            Err(_) => return Delivery::Rejected(0),
        },
        None => (json.to_vec(), None, "application/json"),
    };
    let Some(authority) = uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
    else {
        return Delivery::Rejected(0);
    };
    let scheme = uri.scheme_str().unwrap_or("https");
    let audience = format!("{scheme}://{authority}");
    let mut request = Request::post(uri.path_and_query().map_or("/", |path| path.as_str()))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONTENT_TYPE, content_type)
        // RFC 8030 §5.2: TTL is required; a day covers a phone that is off overnight.
        .header("ttl", "86400")
        .header("urgency", "normal")
        .header(
            http::header::AUTHORIZATION,
            vapid.authorization(&audience, now_unix),
        );
    if let Some(encoding) = content_encoding {
        request = request.header(http::header::CONTENT_ENCODING, encoding);
    }
    let Ok(request) = request.body(Full::new(Bytes::from(body))) else {
        return Delivery::Rejected(0);
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, send(&uri, request)).await {
        Ok(Ok(status)) if status.is_success() => Delivery::Accepted,
        Ok(Ok(status)) if status == StatusCode::NOT_FOUND || status == StatusCode::GONE => {
            Delivery::Gone
        }
        Ok(Ok(status)) if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
            Delivery::Retry
        }
        Ok(Ok(status)) => Delivery::Rejected(status.as_u16()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "push delivery failed");
            Delivery::Retry
        }
        Err(_) => Delivery::Retry,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn send(uri: &Uri, request: Request<Full<Bytes>>) -> Result<StatusCode, BoxError> {
    let host = uri.host().ok_or("no host")?.to_owned();
    let https = uri.scheme_str() != Some("http");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    if !https {
        return exchange(TokioIo::new(tcp), request).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host)?;
    let tls = connector.connect(name, tcp).await?;
    exchange(TokioIo::new(tls), request).await
}

async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<StatusCode, BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await?;
    Ok(response.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decrypts as a user agent would (RFC 8291 §3.4 from the other side).
    fn decrypt(ua_secret: &SecretKey, auth: &[u8], body: &[u8]) -> Vec<u8> {
        let salt = &body[..16];
        assert_eq!(&body[16..20], &RECORD_SIZE.to_be_bytes());
        assert_eq!(body[20], 65);
        let server_public = &body[21..86];
        let server = PublicKey::from_sec1_bytes(server_public).expect("server key");
        let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), server.as_affine());
        let ua_public = ua_secret.public_key().to_encoded_point(false);
        let mut key_info = b"WebPush: info\0".to_vec();
        key_info.extend_from_slice(ua_public.as_bytes());
        key_info.extend_from_slice(server_public);
        let ikm: [u8; 32] = hkdf_expand(auth, shared.raw_secret_bytes(), &key_info);
        let cek: [u8; 16] = hkdf_expand(salt, &ikm, b"Content-Encoding: aes128gcm\0");
        let nonce: [u8; 12] = hkdf_expand(salt, &ikm, b"Content-Encoding: nonce\0");
        let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).expect("key");
        let mut plain = cipher
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), &body[86..])
            .expect("authentic");
        assert_eq!(plain.pop(), Some(2), "last-record delimiter");
        plain
    }

    #[test]
    fn messages_decrypt_with_the_user_agent_keys() {
        let ua = random_secret_key();
        let auth = [7u8; 16];
        let keys = ClientKeys::parse(
            &BASE64URL.encode(ua.public_key().to_encoded_point(false).as_bytes()),
            &BASE64URL.encode(auth),
        )
        .expect("keys");
        let body = encrypt(&keys, br#"{"@type":"StateChange"}"#).expect("encrypt");
        assert_eq!(decrypt(&ua, &auth, &body), br#"{"@type":"StateChange"}"#);
        let again = encrypt(&keys, br#"{"@type":"StateChange"}"#).expect("encrypt");
        assert_ne!(body, again, "fresh salt and key per message");
        assert_eq!(
            ClientKeys::parse("AAAA", &BASE64URL.encode(auth)),
            Err(KeysError::P256dh)
        );
        assert_eq!(
            ClientKeys::parse(&BASE64URL.encode(keys.p256dh.clone()), "AAAA"),
            Err(KeysError::Auth)
        );
    }

    #[test]
    fn vapid_tokens_verify_with_the_advertised_key() {
        use p256::ecdsa::signature::Verifier as _;
        let vapid = VapidKey {
            secret: random_secret_key(),
            subject: "mailto:ops@example.test".to_owned(),
        };
        let header = vapid.authorization("https://push.example.net", 1_000);
        let token = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("t and k");
        assert_eq!(token.1, vapid.public_key_base64());
        let (signing_input, signature) = token.0.rsplit_once('.').expect("signature");
        let claims = signing_input.split('.').nth(1).expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&BASE64URL.decode(claims).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
        let public = BASE64URL.decode(token.1).expect("b64");
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).expect("key");
        let signature =
            p256::ecdsa::Signature::from_slice(&BASE64URL.decode(signature).expect("b64"))
                .expect("signature");
        verifying
            .verify(signing_input.as_bytes(), &signature)
            .expect("valid ES256 signature");
    }
}
