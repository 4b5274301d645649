//! DKIM (RFC 6376) for outbound mail, with mail-auth: `tern domain add` generates a domain's
//! key (RSA-2048 by default, or Ed25519, RFC 8463) and stores it under `QUEUE_OUTBOUND_DKIM`;
//! every message whose From domain has a key is signed as it leaves, once per attempt.
//! Submission-kind messages also lose their Bcc header field here (RFC 5322 §3.6.3: the
//! stored Email keeps it, the copies sent do not).

use base64::Engine as _;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;
use serde::{Deserialize, Serialize};

use super::actor::Context;
use super::queue::{MessageKind, OutboundMessage, address_domain};
use crate::store::keys::{KeyBuilder, QUEUE_OUTBOUND_DKIM, SUBSPACE_QUEUE};
use crate::store::{Store, StoreError, StoreResult};

/// The selector keys are published under (`tern._domainkey.DOMAIN`).
pub const SELECTOR: &str = "tern";

/// The header fields signed (RFC 6376 §5.4.1's recommendations that a message may carry).
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

/// A domain's stored signing key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: KeyAlgorithm,
    /// PKCS#1 DER (RSA) or PKCS#8 DER (Ed25519), base64.
    pub private_key: String,
    /// The public key for the DNS record, base64.
    pub public_key: String,
}

impl DomainKey {
    /// Generates a key for `domain`.
    pub fn generate(domain: &str, algorithm: KeyAlgorithm) -> Result<DomainKey, String> {
        let pair = match algorithm {
            KeyAlgorithm::Rsa => DkimKeyPair::generate_rsa(2048),
            KeyAlgorithm::Ed25519 => DkimKeyPair::generate_ed25519(),
        }
        .map_err(|error| format!("generating the DKIM key: {error}"))?;
        let encoder = base64::engine::general_purpose::STANDARD;
        Ok(DomainKey {
            domain: domain.to_ascii_lowercase(),
            selector: SELECTOR.to_owned(),
            algorithm,
            private_key: encoder.encode(pair.private_key()),
            public_key: encoder.encode(pair.public_key()),
        })
    }

    /// The TXT record value (RFC 6376 §3.6.1).
    pub fn dns_value(&self) -> String {
        match self.algorithm {
            KeyAlgorithm::Rsa => format!("v=DKIM1; k=rsa; p={}", self.public_key),
            KeyAlgorithm::Ed25519 => format!("v=DKIM1; k=ed25519; p={}", self.public_key),
        }
    }

    fn signing_key(&self) -> Result<DkimKey, String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(&self.private_key)
            .map_err(|error| format!("stored DKIM key: {error}"))?;
        match self.algorithm {
            KeyAlgorithm::Rsa => {
                RsaKey::<Sha256>::from_key_der(rustls::pki_types::PrivateKeyDer::Pkcs1(der.into()))
                    .map(DkimKey::from)
                    .map_err(|error| format!("stored DKIM key: {error}"))
            }
            KeyAlgorithm::Ed25519 => Ed25519Key::from_pkcs8_der(&der)
                .map(DkimKey::from)
                .map_err(|error| format!("stored DKIM key: {error}")),
        }
    }

    /// The `DKIM-Signature:` header field (with CRLF) for `raw`.
    pub fn sign(&self, raw: &[u8]) -> Result<String, String> {
        let signature = DkimSigner::from_key(self.signing_key()?)
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(SIGNED_HEADERS)
            .sign(raw)
            .map_err(|error| format!("DKIM signing: {error}"))?;
        Ok(signature.to_header())
    }
}

fn key_of(domain: &str) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_DKIM)
        .str(&domain.to_ascii_lowercase())
        .build()
}

/// Stores (replaces) the key of its domain.
pub async fn store_key(store: &Store, key: &DomainKey) -> StoreResult<()> {
    let bytes = serde_json::to_vec(key).map_err(StoreError::io)?;
    let id = key_of(&key.domain);
    store
        .transact(|tx| {
            let (id, bytes) = (id.clone(), bytes.clone());
            Box::pin(async move { tx.set(&id, &bytes) })
        })
        .await
}

/// The key of `domain`, if it has one.
pub async fn load_key(store: &Store, domain: &str) -> StoreResult<Option<DomainKey>> {
    let id = key_of(domain);
    let bytes = store
        .read(|tx| Box::pin(async move { tx.get(&id).await }))
        .await?;
    match bytes {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::corrupt(format!("DKIM key: {error}"))),
    }
}

/// The domain of the first From address of `raw`.
fn from_domain(raw: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(raw)?;
    let address = parsed.from()?.first()?.address()?.to_owned();
    let domain = address_domain(&address);
    (!domain.is_empty()).then_some(domain)
}

/// RFC 5322 §3.6.3: removes every Bcc field (with its folded continuation lines) from the
/// header section.
pub fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 2)
        .unwrap_or(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    let mut start = 0;
    while start < end {
        let line_end = raw[start..end]
            .windows(2)
            .position(|window| window == b"\r\n")
            .map_or(end, |at| start + at + 2);
        let line = &raw[start..line_end];
        let continuation = line
            .first()
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        start = line_end;
    }
    out.extend_from_slice(&raw[end..]);
    out
}

/// The message as it leaves: without Bcc (submissions), then signed when the From domain has
/// a key. A signing failure sends the message unsigned (and says so in the log).
pub(super) async fn sign(context: &Context, message: &OutboundMessage, raw: Vec<u8>) -> Vec<u8> {
    let raw = if message.kind == MessageKind::Submission {
        strip_bcc(&raw)
    } else {
        raw
    };
    let Some(domain) = from_domain(&raw) else {
        return raw;
    };
    let key = match load_key(&context.store, &domain).await {
        Ok(Some(key)) => key,
        Ok(None) => return raw,
        Err(error) => {
            tracing::warn!(%error, domain, "outbound: reading the DKIM key failed; sending unsigned");
            return raw;
        }
    };
    match key.sign(&raw) {
        Ok(header) => {
            let mut signed = Vec::with_capacity(header.len() + raw.len());
            signed.extend_from_slice(header.as_bytes());
            signed.extend_from_slice(&raw);
            signed
        }
        Err(error) => {
            tracing::warn!(%error, domain, "outbound: DKIM signing failed; sending unsigned");
            raw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_goes_with_its_continuation_lines() {
        let raw = b"From: a@x.test\r\nBcc: hidden@y.test,\r\n other@y.test\r\nTo: b@y.test\r\n\r\nBcc: in the body stays\r\n";
        assert_eq!(
            strip_bcc(raw),
            b"From: a@x.test\r\nTo: b@y.test\r\n\r\nBcc: in the body stays\r\n".to_vec()
        );
    }

    #[test]
    fn ed25519_signatures_name_the_domain_and_selector() {
        let key = DomainKey::generate("Example.TEST", KeyAlgorithm::Ed25519).expect("key");
        let header = key
            .sign(b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n")
            .expect("sign");
        assert!(header.starts_with("DKIM-Signature:"), "{header}");
        assert!(header.contains("d=example.test"), "{header}");
        assert!(header.contains("s=tern"), "{header}");
        assert!(header.contains("a=ed25519-sha256"), "{header}");
        assert!(key.dns_value().starts_with("v=DKIM1; k=ed25519; p="));
    }
}
