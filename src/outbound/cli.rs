//! `tern queue list|retry|cancel` and `tern domain add`: on a stopped data directory they
//! open the store; while the server runs (the embedded store is single-process) they go
//! through its admin endpoint, which calls the same [`super::admin`] functions.

use http::Method;
use serde_json::{Value, json};

use super::admin::{self, DomainRecords, QueueRow};
use super::dkim::KeyAlgorithm;
use crate::auth::Directory;
use crate::config::Config;
use crate::http::admin_client::{AdminClient, AdminClientError};
use crate::store::StoreErrorKind;

/// One outbound admin operation.
#[derive(Debug, Clone)]
pub enum Operation {
    List,
    Retry(u64),
    Cancel(u64),
    AddDomain {
        domain: String,
        algorithm: KeyAlgorithm,
    },
}

/// Runs `operation` and returns what to print.
pub async fn run(config: &Config, operation: Operation) -> Result<String, String> {
    let data_dir = &config.server.data_dir;
    if !data_dir.exists() {
        return Err(format!(
            "data directory {} does not exist (use --data-dir or --config)",
            data_dir.display()
        ));
    }
    let mail_host = config
        .outbound
        .hostname
        .clone()
        .or_else(|| {
            config
                .server
                .base_url
                .as_deref()
                .and_then(|url| url.split("://").nth(1))
                .and_then(|rest| rest.split(['/', ':']).next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let answer = match crate::server::open_store(config).await {
        Ok(store) => {
            let directory = Directory::new(store.clone());
            let answer = locally(&directory, operation, &mail_host).await;
            drop(directory);
            store.close().await.map_err(|error| error.to_string())?;
            answer?
        }
        Err(error) if error.kind == StoreErrorKind::Locked => {
            let client = AdminClient::connect(data_dir)
                .await
                .map_err(|error| error.to_string())?;
            remotely(&client, operation, &mail_host)
                .await
                .map_err(|error| error.to_string())?
        }
        Err(error) => return Err(error.message),
    };
    Ok(answer)
}

async fn locally(
    directory: &Directory,
    operation: Operation,
    mail_host: &str,
) -> Result<String, String> {
    let store = directory.store();
    match operation {
        Operation::List => Ok(render_list(
            &admin::list(store, 0)
                .await
                .map_err(|error| error.to_string())?,
        )),
        Operation::Retry(id) => match admin::retry(store, id).await {
            Ok(true) => Ok(format!("message {id} will be retried when the server runs")),
            Ok(false) => Err(format!("no queued message {id}")),
            Err(error) => Err(error.to_string()),
        },
        Operation::Cancel(id) => match admin::cancel(store, id).await {
            Ok(true) => Ok(format!("message {id} removed from the queue")),
            Ok(false) => Err(format!("no queued message {id}")),
            Err(error) => Err(error.to_string()),
        },
        Operation::AddDomain { domain, algorithm } => Ok(render_records(
            &admin::add_domain(directory, &domain, algorithm, mail_host).await?,
        )),
    }
}

async fn remotely(
    client: &AdminClient,
    operation: Operation,
    mail_host: &str,
) -> Result<String, AdminClientError> {
    Ok(match operation {
        Operation::List => {
            let rows: Vec<QueueRow> = client
                .call(Method::GET, "/admin/outbound/queue", None)
                .await?;
            render_list(&rows)
        }
        Operation::Retry(id) => {
            let _: Value = client
                .call(
                    Method::POST,
                    &format!("/admin/outbound/queue/{id}/retry"),
                    None,
                )
                .await?;
            format!("message {id} will be retried now")
        }
        Operation::Cancel(id) => {
            let _: Value = client
                .call(Method::DELETE, &format!("/admin/outbound/queue/{id}"), None)
                .await?;
            format!("message {id} removed from the queue")
        }
        Operation::AddDomain { domain, algorithm } => {
            let body = json!({
                "domain": domain,
                "algorithm": if algorithm == KeyAlgorithm::Ed25519 { "ed25519" } else { "rsa" },
                "mailHost": mail_host,
            });
            let records: DomainRecords = client
                .call(Method::POST, "/admin/outbound/domains", Some(body))
                .await?;
            render_records(&records)
        }
    })
}

fn render_list(rows: &[QueueRow]) -> String {
    if rows.is_empty() {
        return "the outbound queue is empty".to_owned();
    }
    let mut text = String::new();
    for row in rows {
        let from = if row.mail_from.is_empty() {
            "<>"
        } else {
            row.mail_from.as_str()
        };
        text.push_str(&format!(
            "{}\taccount {}\tfrom {from}\t{}\n",
            row.id, row.account_id, row.status
        ));
        for recipient in &row.recipients {
            text.push_str(&format!("\t{recipient}\n"));
        }
    }
    text.trim_end().to_owned()
}

fn render_records(records: &DomainRecords) -> String {
    format!(
        "domain {} added; outbound mail from it is DKIM-signed.\nPublish these DNS records:\n{}",
        records.domain,
        records.records.join("\n")
    )
}
