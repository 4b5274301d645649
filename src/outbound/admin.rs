//! What `tern queue …` and `tern domain add` do, on a store (the CLI on a stopped data
//! directory) or inside the running server (its admin endpoint calls the same functions).

use serde::{Deserialize, Serialize};

use super::clock::system_now;
use super::dkim::{self, DomainKey, KeyAlgorithm};
use super::queue::{self, RecipientState};
use crate::auth::Directory;
use crate::store::{Store, StoreResult};

/// One line of `tern queue list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QueueRow {
    pub id: u64,
    pub account_id: u32,
    pub mail_from: String,
    /// `address (state, attempts, last reply)`.
    pub recipients: Vec<String>,
    /// `held: reason`, `retrying at …`, `sending`, `scheduled at …`.
    pub status: String,
}

/// Up to `limit` queued messages, oldest first.
pub async fn list(store: &Store, limit: usize) -> StoreResult<Vec<QueueRow>> {
    let entries = store
        .read(|tx| Box::pin(async move { queue::list(tx, limit).await }))
        .await?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let status = if let Some(reason) = &entry.held {
                format!("held: {reason}")
            } else if entry.claim.is_some() {
                "sending".to_owned()
            } else {
                match entry.next_due() {
                    Some(at) => format!("next attempt at {}", format_time(at)),
                    None => "finished".to_owned(),
                }
            };
            QueueRow {
                id: entry.id,
                account_id: entry.account_id,
                mail_from: entry.mail_from.clone(),
                recipients: entry
                    .recipients
                    .iter()
                    .map(|recipient| {
                        let state = match recipient.state {
                            RecipientState::Pending => "pending",
                            RecipientState::Delivered => "delivered",
                            RecipientState::Failed => "failed",
                        };
                        match &recipient.last_reply {
                            Some(reply) => format!(
                                "{} ({state}, {} attempts, {reply})",
                                recipient.address, recipient.attempts
                            ),
                            None => format!("{} ({state})", recipient.address),
                        }
                    })
                    .collect(),
                status,
            }
        })
        .collect())
}

fn format_time(at: i64) -> String {
    crate::jmap::types::UtcDate::from_unix(at / 1000, 0)
        .map_or_else(|| at.to_string(), |date| date.to_string())
}

/// `tern queue retry ID`: every pending recipient now, out of the error queue.
pub async fn retry(store: &Store, id: u64) -> StoreResult<bool> {
    let now = system_now();
    store
        .transact(|tx| Box::pin(async move { queue::retry_now(tx, id, now).await }))
        .await
}

/// `tern queue cancel ID`: removes the message whatever its state (no bounce).
pub async fn cancel(store: &Store, id: u64) -> StoreResult<bool> {
    store
        .transact(|tx| Box::pin(async move { Ok(queue::remove(tx, id).await?.is_some()) }))
        .await
}

/// What `tern domain add` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DomainRecords {
    pub domain: String,
    /// Zone-file lines: MX, SPF, DKIM, DMARC.
    pub records: Vec<String>,
}

/// `tern domain add DOMAIN`: the domain becomes local, gets a DKIM key (a new one each time),
/// and the DNS records to publish come back. `mail_host` is the MX target (this server).
pub async fn add_domain(
    directory: &Directory,
    domain: &str,
    algorithm: KeyAlgorithm,
    mail_host: &str,
) -> Result<DomainRecords, String> {
    let domain = crate::auth::directory::normalize_domain(domain)
        .ok_or_else(|| format!("{domain:?} is not a domain name"))?;
    let key = tokio::task::spawn_blocking({
        let domain = domain.clone();
        move || DomainKey::generate(&domain, algorithm)
    })
    .await
    .map_err(|error| error.to_string())??;
    directory
        .add_domain(&domain)
        .await
        .map_err(|error| error.to_string())?;
    dkim::store_key(directory.store(), &key)
        .await
        .map_err(|error| error.to_string())?;
    Ok(DomainRecords {
        records: dns_records(&domain, &key, mail_host),
        domain,
    })
}

/// The records of `domain` in zone-file syntax. A TXT string holds at most 255 bytes (RFC
/// 1035 §3.3), so the DKIM value is split into several quoted strings.
pub fn dns_records(domain: &str, key: &DomainKey, mail_host: &str) -> Vec<String> {
    let dkim_value = key.dns_value();
    let quoted: Vec<String> = dkim_value
        .as_bytes()
        .chunks(250)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    vec![
        format!("{domain}. IN MX 10 {mail_host}."),
        format!("{domain}. IN TXT \"v=spf1 mx -all\""),
        format!(
            "{}._domainkey.{domain}. IN TXT ( {} )",
            key.selector,
            quoted.join(" ")
        ),
        format!("_dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; adkim=s; aspf=s\""),
    ]
}

/// The admin endpoint's `/admin/outbound/…` routes (the CLI while the server runs):
/// `GET queue`, `POST queue/ID/retry`, `DELETE queue/ID`, `POST domains` with
/// `{"domain", "algorithm", "mailHost"}`. `Err` is an HTTP status and a message.
pub async fn route(
    directory: &Directory,
    method: &str,
    path: &[&str],
    body: serde_json::Value,
) -> Result<serde_json::Value, (u16, String)> {
    let store = directory.store();
    let failed = |error: crate::store::StoreError| (500, error.to_string());
    let id_of = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| (400, format!("{text:?} is not a queue id")))
    };
    let found = |done: bool, id: u64| {
        if done {
            Ok(serde_json::json!({ "id": id }))
        } else {
            Err((404, format!("no queued message {id}")))
        }
    };
    match (method, path) {
        ("GET", ["queue"]) => serde_json::to_value(list(store, 0).await.map_err(failed)?)
            .map_err(|error| (500, error.to_string())),
        ("POST", ["queue", id, "retry"]) => {
            let id = id_of(id)?;
            found(retry(store, id).await.map_err(failed)?, id)
        }
        ("DELETE", ["queue", id]) => {
            let id = id_of(id)?;
            found(cancel(store, id).await.map_err(failed)?, id)
        }
        ("POST", ["domains"]) => {
            let domain = body["domain"].as_str().unwrap_or_default();
            let algorithm = match body["algorithm"].as_str() {
                Some("ed25519") => KeyAlgorithm::Ed25519,
                _ => KeyAlgorithm::Rsa,
            };
            let mail_host = body["mailHost"].as_str().unwrap_or("localhost");
            let records = add_domain(directory, domain, algorithm, mail_host)
                .await
                .map_err(|message| (400, message))?;
            serde_json::to_value(records).map_err(|error| (500, error.to_string()))
        }
        _ => Err((404, "no such outbound admin route".to_owned())),
    }
}
