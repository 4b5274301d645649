//! The admin endpoint: how `tern account ...` and `tern token create` reach a running
//! server, whose embedded store no other process may open.
//!
//! The server listens on a loopback port and writes `<data_dir>/admin.json` (mode 0600) with
//! the URL and a random secret; the CLI reads it and authenticates with
//! `Authorization: Bearer <secret>`. Anyone who can read the data directory could open the
//! store anyway, so the file grants nothing new. It is removed on clean shutdown.
//!
//! Routes (JSON in and out, errors as problem JSON whose `type` is `urn:tern:admin:<kind>`):
//! - `GET /admin/ping` → `{"server": "tern", "pid": N}`
//! - `GET /admin/accounts` → `[AccountInfo]`
//! - `POST /admin/accounts` `{"email", "password"}` → 201 `AccountInfo`
//! - `DELETE /admin/accounts/{email}` → `AccountInfo`
//! - `PUT /admin/accounts/{email}/password` `{"password"}` → 204
//! - `POST /admin/accounts/{email}/tokens` → 201 `{"token"}`

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::response::{PROBLEM_JSON, ResponseBody, empty_response, full_body, json_response};
use super::{BodyError, read_capped};
use crate::auth::{Directory, DirectoryError, DirectoryErrorKind};

pub const ADMIN_FILE_NAME: &str = "admin.json";
const MAX_ADMIN_BODY: u64 = 64 * 1024;

/// The contents of `admin.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdminFile {
    pub url: String,
    pub secret: String,
    pub pid: u32,
}

impl AdminFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(ADMIN_FILE_NAME)
    }

    pub fn new(addr: SocketAddr) -> AdminFile {
        let random: [u8; 32] = rand::random();
        AdminFile {
            url: format!("http://{addr}"),
            secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random),
            pid: std::process::id(),
        }
    }

    /// Writes the file readable by the owner only, atomically (temp file + rename).
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let temporary = data_dir.join(format!("{ADMIN_FILE_NAME}.{}.tmp", self.pid));
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, AdminFile::path(data_dir))
    }

    pub fn read(data_dir: &Path) -> std::io::Result<AdminFile> {
        let bytes = std::fs::read(AdminFile::path(data_dir))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Removes the file if it is still ours (a newer server may have replaced it).
    pub fn remove_if_ours(&self, data_dir: &Path) {
        if AdminFile::read(data_dir).is_ok_and(|current| current == *self)
            && let Err(error) = std::fs::remove_file(AdminFile::path(data_dir))
        {
            tracing::warn!(%error, "cannot remove admin.json");
        }
    }
}

pub struct AdminState {
    pub directory: Directory,
    pub secret: String,
}

/// Constant-time comparison, so response timing does not reveal the secret.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

fn admin_problem(status: StatusCode, kind: &str, detail: &str) -> Response<ResponseBody> {
    let body = json!({
        "type": format!("urn:tern:admin:{kind}"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = Response::new(full_body(serde_json::to_vec(&body).unwrap_or_default()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// The `urn:tern:admin:` kind of a directory error; the client maps it back.
pub fn error_kind_name(kind: DirectoryErrorKind) -> &'static str {
    match kind {
        DirectoryErrorKind::InvalidEmail => "invalidEmail",
        DirectoryErrorKind::InvalidPassword => "invalidPassword",
        DirectoryErrorKind::AccountExists => "accountExists",
        DirectoryErrorKind::UnknownAccount => "unknownAccount",
        DirectoryErrorKind::Store(_) => "storeError",
    }
}

fn directory_problem(error: &DirectoryError) -> Response<ResponseBody> {
    let status = match error.kind {
        DirectoryErrorKind::InvalidEmail | DirectoryErrorKind::InvalidPassword => {
            StatusCode::BAD_REQUEST
        }
        DirectoryErrorKind::AccountExists => StatusCode::CONFLICT,
        DirectoryErrorKind::UnknownAccount => StatusCode::NOT_FOUND,
        DirectoryErrorKind::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    admin_problem(status, error_kind_name(error.kind), &error.message)
}

#[derive(Deserialize)]
struct CreateAccount {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct SetPassword {
    password: String,
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<ResponseBody>> {
    let body = match read_capped(request.into_body(), MAX_ADMIN_BODY).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return Err(admin_problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "badRequest",
                "body too large",
            ));
        }
        Err(BodyError::Broken(detail)) => {
            return Err(admin_problem(
                StatusCode::BAD_REQUEST,
                "badRequest",
                &detail,
            ));
        }
    };
    serde_json::from_slice(&body)
        .map_err(|error| admin_problem(StatusCode::BAD_REQUEST, "badRequest", &error.to_string()))
}

fn ok_json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    match serde_json::to_value(value) {
        Ok(value) => json_response(status, &value),
        Err(error) => admin_problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &error.to_string(),
        ),
    }
}

/// Serves one admin request (a panic becomes a 500 problem for that request only).
pub async fn serve_admin_request(
    state: Arc<AdminState>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    use futures_util::FutureExt as _;
    std::panic::AssertUnwindSafe(route_admin_request(state, request))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!("admin request handler panicked");
            admin_problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error while handling the admin request",
            )
        })
}

async fn route_admin_request(
    state: Arc<AdminState>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let authorized = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|presented| same_secret(presented, state.secret.as_bytes()));
    if !authorized {
        return admin_problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin secret (admin.json) is required",
        );
    }
    let path = request.uri().path().to_owned();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().clone();
    let directory = &state.directory;
    if method == Method::GET {
        tracing::debug!(%method, %path, "admin request");
    } else {
        tracing::info!(%method, %path, "admin request");
    }
    match (method, segments.as_slice()) {
        (Method::GET, ["admin", "ping"]) => ok_json(
            StatusCode::OK,
            &json!({"server": "tern", "pid": std::process::id()}),
        ),
        (Method::GET, ["admin", "accounts"]) => match directory.list_accounts().await {
            Ok(accounts) => ok_json(StatusCode::OK, &accounts),
            Err(error) => directory_problem(&error),
        },
        (Method::POST, ["admin", "accounts"]) => {
            let create: CreateAccount = match read_json(request).await {
                Ok(create) => create,
                Err(response) => return response,
            };
            match directory
                .create_account(&create.email, &create.password)
                .await
            {
                Ok(account) => ok_json(StatusCode::CREATED, &account),
                Err(error) => directory_problem(&error),
            }
        }
        (Method::DELETE, ["admin", "accounts", email]) => {
            match directory.delete_account(email).await {
                Ok(account) => ok_json(StatusCode::OK, &account),
                Err(error) => directory_problem(&error),
            }
        }
        (Method::PUT, ["admin", "accounts", email, "password"]) => {
            let email = (*email).to_owned();
            let change: SetPassword = match read_json(request).await {
                Ok(change) => change,
                Err(response) => return response,
            };
            match directory.set_password(&email, &change.password).await {
                Ok(()) => empty_response(StatusCode::NO_CONTENT),
                Err(error) => directory_problem(&error),
            }
        }
        (Method::PUT, ["admin", "accounts", email, "quota"]) => {
            let email = (*email).to_owned();
            let change: crate::mail::quota::LimitsChange = match read_json(request).await {
                Ok(change) => change,
                Err(response) => return response,
            };
            let account_id = match directory.account(&email).await {
                Ok(account) => account.account_id,
                Err(error) => return directory_problem(&error),
            };
            let store = directory.store();
            let answer = match change.is_empty() {
                true => crate::mail::quota::report(store, account_id).await,
                false => crate::mail::quota::change_limits(store, account_id, change).await,
            };
            match answer {
                Ok(report) => ok_json(StatusCode::OK, &report),
                Err(error) => admin_problem(StatusCode::BAD_REQUEST, "quota", &error.message),
            }
        }
        (Method::PUT, ["admin", "domains", domain, "quota"]) => {
            let domain = (*domain).to_owned();
            let change: crate::mail::quota::LimitsChange = match read_json(request).await {
                Ok(change) => change,
                Err(response) => return response,
            };
            match directory.domain_quota(&domain, change).await {
                Ok(report) => ok_json(StatusCode::OK, &report),
                Err(error) => directory_problem(&error),
            }
        }
        (method, ["admin", "groups", rest @ ..]) => {
            let body = if method == Method::POST {
                match read_json::<serde_json::Value>(request).await {
                    Ok(body) => body,
                    Err(response) => return response,
                }
            } else {
                serde_json::Value::Null
            };
            let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            let operation = match (&method, rest) {
                (&Method::GET, []) => crate::group_cli::Operation::List,
                (&Method::POST, []) => crate::group_cli::Operation::Create {
                    email: text("email"),
                    name: text("name"),
                },
                (&Method::POST, ["members"]) if body["join"] == true => {
                    crate::group_cli::Operation::Add {
                        group: text("group"),
                        member: text("member"),
                    }
                }
                (&Method::POST, ["members"]) => crate::group_cli::Operation::Remove {
                    group: text("group"),
                    member: text("member"),
                },
                _ => return admin_problem(StatusCode::NOT_FOUND, "groups", "no such resource"),
            };
            match crate::group_cli::route(directory, &operation).await {
                Ok(value) => ok_json(StatusCode::OK, &value),
                Err(message) => admin_problem(StatusCode::BAD_REQUEST, "groups", &message),
            }
        }
        (method, ["admin", "outbound", rest @ ..]) => {
            let body = if method == Method::POST {
                match read_json::<serde_json::Value>(request).await {
                    Ok(body) => body,
                    Err(response) => return response,
                }
            } else {
                serde_json::Value::Null
            };
            match crate::outbound::admin::route(directory, method.as_str(), rest, body).await {
                Ok(value) => ok_json(StatusCode::OK, &value),
                Err((status, message)) => admin_problem(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    "outbound",
                    &message,
                ),
            }
        }
        (method, ["admin", "quarantine", rest @ ..]) => {
            match crate::smtp::quarantine::route(directory, method.as_str(), rest).await {
                Ok(value) => ok_json(StatusCode::OK, &value),
                Err((status, message)) => admin_problem(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    "quarantine",
                    &message,
                ),
            }
        }
        (Method::POST, ["admin", "accounts", email, "tokens"]) => {
            match directory.create_token(email).await {
                Ok(token) => ok_json(StatusCode::CREATED, &json!({ "token": token })),
                Err(error) => directory_problem(&error),
            }
        }
        (Method::GET, ["admin", "index"]) => {
            match crate::search::queue::pending_count(directory.store()).await {
                Ok(pending) => ok_json(StatusCode::OK, &json!({ "pendingTasks": pending })),
                Err(error) => directory_problem(&error.into()),
            }
        }
        (Method::POST, ["admin", "accounts", email, "index", "rebuild"]) => {
            match crate::search::rebuild::rebuild(directory, Some(email)).await {
                Ok(queued) => ok_json(
                    StatusCode::OK,
                    &json!({ "emails": queued.first().map_or(0, |(_, emails)| *emails) }),
                ),
                Err(error) => directory_problem(&error),
            }
        }
        _ => admin_problem(StatusCode::NOT_FOUND, "notFound", "no such admin resource"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
    }

    #[test]
    fn admin_file_round_trip_and_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = AdminFile::new("127.0.0.1:4242".parse().unwrap());
        file.write(dir.path()).unwrap();
        let mode = std::fs::metadata(AdminFile::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(AdminFile::read(dir.path()).unwrap(), file);
        let other = AdminFile::new("127.0.0.1:4243".parse().unwrap());
        other.remove_if_ours(dir.path());
        assert!(AdminFile::path(dir.path()).exists(), "not ours: kept");
        file.remove_if_ours(dir.path());
        assert!(!AdminFile::path(dir.path()).exists());
    }
}
