//! The CLI side of the admin endpoint (see [`super::admin`]): a minimal HTTP/1.1 client on
//! hyper's client connection, enough for one request per connection on loopback.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::AdminFile;
use crate::auth::{AccountInfo, DirectoryErrorKind};
use crate::store::StoreErrorKind;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// No admin.json, or nobody answers at its URL.
    #[error("{0}")]
    Unreachable(String),
    /// The server refused the operation (unknown account, account exists, ...).
    #[error("{message}")]
    Refused {
        kind: Option<DirectoryErrorKind>,
        message: String,
    },
}

pub struct AdminClient {
    file: AdminFile,
    authority: String,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    detail: String,
}

fn kind_from_name(name: &str) -> Option<DirectoryErrorKind> {
    Some(match name {
        "invalidEmail" => DirectoryErrorKind::InvalidEmail,
        "invalidPassword" => DirectoryErrorKind::InvalidPassword,
        "accountExists" => DirectoryErrorKind::AccountExists,
        "unknownAccount" => DirectoryErrorKind::UnknownAccount,
        "storeError" => DirectoryErrorKind::Store(StoreErrorKind::Io),
        _ => return None,
    })
}

fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

impl AdminClient {
    /// Connects to the server that owns `data_dir`, checking that it answers.
    pub async fn connect(data_dir: &Path) -> Result<AdminClient, AdminClientError> {
        let file = AdminFile::read(data_dir).map_err(|error| {
            AdminClientError::Unreachable(format!(
                "no running Tern server found for {} ({}: {error})",
                data_dir.display(),
                AdminFile::path(data_dir).display()
            ))
        })?;
        let authority = file
            .url
            .strip_prefix("http://")
            .unwrap_or(&file.url)
            .trim_end_matches('/')
            .to_owned();
        let client = AdminClient { file, authority };
        client.send(Method::GET, "/admin/ping", None).await?;
        Ok(client)
    }

    /// The server's process id, from admin.json.
    pub fn server_pid(&self) -> u32 {
        self.file.pid
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), AdminClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_once(method, path, body))
            .await
            .map_err(|_| {
                AdminClientError::Unreachable(format!(
                    "the Tern server at {} did not answer in time",
                    self.file.url
                ))
            })?
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), AdminClientError> {
        let unreachable = |error: &dyn std::fmt::Display| {
            AdminClientError::Unreachable(format!(
                "cannot reach the Tern server's admin endpoint at {}: {error}",
                self.file.url
            ))
        };
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|error| unreachable(&error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(&error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin client connection ended");
            }
        });
        let body_bytes = match &body {
            Some(value) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {}", self.file.secret))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body_bytes))
            .map_err(|error| unreachable(&error))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(&error))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| unreachable(&error))?
            .to_bytes();
        if status.is_success() {
            return Ok((status, bytes));
        }
        let problem: Problem = serde_json::from_slice(&bytes).unwrap_or(Problem {
            kind: String::new(),
            detail: format!("the server answered {status}"),
        });
        let kind_name = problem.kind.strip_prefix("urn:tern:admin:").unwrap_or("");
        if status == StatusCode::UNAUTHORIZED {
            return Err(AdminClientError::Unreachable(format!(
                "the Tern server at {} refused the admin secret from admin.json",
                self.file.url
            )));
        }
        Err(AdminClientError::Refused {
            kind: kind_from_name(kind_name),
            message: problem.detail,
        })
    }

    /// Any admin route answering JSON (`tern queue …`, `tern domain add`).
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, AdminClientError> {
        let (_, bytes) = self.send(method, path, body).await?;
        AdminClient::parse(&bytes)
    }

    fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminClientError> {
        serde_json::from_slice(bytes).map_err(|error| AdminClientError::Refused {
            kind: None,
            message: format!("unexpected answer from the server: {error}"),
        })
    }

    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, AdminClientError> {
        let (_, bytes) = self.send(Method::GET, "/admin/accounts", None).await?;
        AdminClient::parse(&bytes)
    }

    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
    ) -> Result<AccountInfo, AdminClientError> {
        let body = json!({ "email": email, "password": password });
        let (_, bytes) = self
            .send(Method::POST, "/admin/accounts", Some(body))
            .await?;
        AdminClient::parse(&bytes)
    }

    pub async fn delete_account(&self, email: &str) -> Result<AccountInfo, AdminClientError> {
        let path = format!("/admin/accounts/{}", encode_segment(email));
        let (_, bytes) = self.send(Method::DELETE, &path, None).await?;
        AdminClient::parse(&bytes)
    }

    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), AdminClientError> {
        let path = format!("/admin/accounts/{}/password", encode_segment(email));
        self.send(Method::PUT, &path, Some(json!({ "password": password })))
            .await?;
        Ok(())
    }

    /// `tern account quota`: the account's quota after applying `change` (none: just read).
    pub async fn quota(
        &self,
        email: &str,
        change: &crate::mail::quota::LimitsChange,
    ) -> Result<crate::mail::quota::QuotaReport, AdminClientError> {
        let path = format!("/admin/accounts/{}/quota", encode_segment(email));
        let body = serde_json::to_value(change).unwrap_or_default();
        let (_, bytes) = self.send(Method::PUT, &path, Some(body)).await?;
        AdminClient::parse(&bytes)
    }

    /// `tern domain quota`: the domain's quota after applying `change` (none: just read).
    pub async fn domain_quota(
        &self,
        domain: &str,
        change: &crate::mail::quota::LimitsChange,
    ) -> Result<crate::mail::quota::DomainQuotaReport, AdminClientError> {
        let path = format!("/admin/domains/{}/quota", encode_segment(domain));
        let body = serde_json::to_value(change).unwrap_or_default();
        let (_, bytes) = self.send(Method::PUT, &path, Some(body)).await?;
        AdminClient::parse(&bytes)
    }

    /// Search index tasks not yet committed (all accounts).
    pub async fn index_pending(&self) -> Result<u64, AdminClientError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            pending_tasks: u64,
        }
        let (_, bytes) = self.send(Method::GET, "/admin/index", None).await?;
        let status: Status = AdminClient::parse(&bytes)?;
        Ok(status.pending_tasks)
    }

    /// Queues the rebuild of an account's search documents; returns how many Emails.
    pub async fn rebuild_index(&self, email: &str) -> Result<u64, AdminClientError> {
        #[derive(Deserialize)]
        struct Queued {
            emails: u64,
        }
        let path = format!("/admin/accounts/{}/index/rebuild", encode_segment(email));
        let (_, bytes) = self.send(Method::POST, &path, None).await?;
        let queued: Queued = AdminClient::parse(&bytes)?;
        Ok(queued.emails)
    }

    pub async fn create_token(&self, email: &str) -> Result<String, AdminClientError> {
        #[derive(Deserialize)]
        struct Created {
            token: String,
        }
        let path = format!("/admin/accounts/{}/tokens", encode_segment(email));
        let (_, bytes) = self.send(Method::POST, &path, None).await?;
        let created: Created = AdminClient::parse(&bytes)?;
        Ok(created.token)
    }
}
