//! The session resource (RFC 8620 §2): fetching it, reading the URLs, account and limits the
//! other cases need, and checking its shape.

use serde_json::{Value, json};

use crate::http::{Auth, Http, resolve_url};
use crate::matcher::{Variables, is_jmap_id};
use crate::{Config, Recorder, sections};

pub const CORE_CAPABILITY: &str = "urn:ietf:params:jmap:core";

/// RFC 8620 §2: the limits every server advertises in the core capability.
pub const CORE_LIMITS: &[&str] = &[
    "maxSizeUpload",
    "maxConcurrentUpload",
    "maxSizeRequest",
    "maxConcurrentRequests",
    "maxCallsInRequest",
    "maxObjectsInGet",
    "maxObjectsInSet",
];

/// A second user, for the account-isolation cases.
pub struct OtherUser {
    pub auth: Auth,
    pub account_id: String,
}

/// The server under test as the session resource describes it.
pub struct Target {
    pub config: Config,
    pub http: Http,
    pub auth: Auth,
    pub session: Value,
    pub api_url: String,
    pub upload_url: String,
    pub download_url: String,
    pub account_id: String,
    pub other_user: Option<OtherUser>,
    /// Fixture variables: `accountId`, `sessionState`, `username`, every core limit, and
    /// `otherAccountId` when a second user is configured.
    pub variables: Variables,
}

impl Target {
    pub async fn connect(config: &Config) -> Result<Self, String> {
        let http = Http::new(config.request_timeout)?;
        let auth = Auth::basic(&config.credentials.user, &config.credentials.password);
        let session = fetch_session(&http, &config.session_url, &auth).await?;
        let url_member = |name: &str| -> Result<String, String> {
            let reference = session[name]
                .as_str()
                .ok_or_else(|| format!("session has no string {name}"))?;
            // Templates keep their braces through resolution only if we resolve the prefix;
            // Url::join would percent-encode `{`, so resolve only relative references.
            if reference.starts_with("http://") || reference.starts_with("https://") {
                return Ok(reference.to_owned());
            }
            resolve_url(&config.session_url, reference)
                .map(|resolved| resolved.replace("%7B", "{").replace("%7D", "}"))
        };
        let api_url = url_member("apiUrl")?;
        let upload_url = url_member("uploadUrl")?;
        let download_url = url_member("downloadUrl")?;
        let account_id = own_account_id(&session)?;

        let other_user = match &config.second_user {
            None => None,
            Some(credentials) => {
                let other_auth = Auth::basic(&credentials.user, &credentials.password);
                let other_session = fetch_session(&http, &config.session_url, &other_auth)
                    .await
                    .map_err(|error| format!("second user: {error}"))?;
                let other_account_id = own_account_id(&other_session)?;
                if other_account_id == account_id {
                    return Err("both users have the same account id".to_owned());
                }
                Some(OtherUser {
                    auth: other_auth,
                    account_id: other_account_id,
                })
            }
        };

        let mut variables = Variables::new();
        variables.insert("accountId".into(), json!(account_id));
        variables.insert("sessionState".into(), session["state"].clone());
        variables.insert("username".into(), session["username"].clone());
        let core = &session["capabilities"][CORE_CAPABILITY];
        for limit in CORE_LIMITS {
            variables.insert((*limit).into(), core[*limit].clone());
        }
        if let Some(other) = &other_user {
            variables.insert("otherAccountId".into(), json!(other.account_id));
        }

        Ok(Self {
            config: config.clone(),
            http,
            auth,
            session,
            api_url,
            upload_url,
            download_url,
            account_id,
            other_user,
            variables,
        })
    }

    pub fn core_limit(&self, name: &str) -> Option<u64> {
        self.session["capabilities"][CORE_CAPABILITY][name].as_u64()
    }
}

async fn fetch_session(http: &Http, url: &str, auth: &Auth) -> Result<Value, String> {
    let answer = http.get(url, auth).await?;
    if answer.status != 200 {
        return Err(format!(
            "GET {url} answered HTTP {} (expected 200): {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        ));
    }
    answer.json()
}

/// The account the user owns: the primary account for the core capability if listed, else
/// the first personal account, else the first account.
fn own_account_id(session: &Value) -> Result<String, String> {
    if let Some(primary) = session["primaryAccounts"][CORE_CAPABILITY].as_str() {
        return Ok(primary.to_owned());
    }
    let accounts = session["accounts"]
        .as_object()
        .ok_or("session has no accounts object")?;
    let personal = accounts
        .iter()
        .find(|(_, account)| account["isPersonal"] == Value::Bool(true));
    personal
        .or_else(|| accounts.iter().next())
        .map(|(id, _)| id.clone())
        .ok_or_else(|| "session lists no account".to_owned())
}

pub fn check_session(target: &Target, recorder: &mut Recorder<'_>) {
    let section = sections::SESSION;
    let session = &target.session;
    let core = &session["capabilities"][CORE_CAPABILITY];

    recorder.check(section, "capabilities include urn:ietf:params:jmap:core", {
        if core.is_object() {
            Ok(())
        } else {
            Err(format!("capabilities: {}", session["capabilities"]))
        }
    });
    recorder.check(
        section,
        "core capability advertises every limit as UnsignedInt",
        {
            let missing: Vec<&str> = CORE_LIMITS
                .iter()
                .copied()
                .filter(|limit| core[*limit].as_u64().is_none_or(|value| value == 0))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "missing or not a positive UnsignedInt: {}",
                    missing.join(", ")
                ))
            }
        },
    );
    recorder.check(section, "core capability lists collationAlgorithms", {
        match core["collationAlgorithms"].as_array() {
            Some(algorithms) if algorithms.iter().all(Value::is_string) => Ok(()),
            _ => Err(format!(
                "collationAlgorithms: {}",
                core["collationAlgorithms"]
            )),
        }
    });
    recorder.check(
        section,
        "accounts have name, isPersonal, isReadOnly, accountCapabilities",
        check_accounts(session),
    );
    recorder.check(
        section,
        "primaryAccounts point at listed accounts",
        check_primary_accounts(session),
    );
    recorder.check(section, "username, apiUrl and state are strings", {
        let missing: Vec<&str> = ["username", "apiUrl", "state"]
            .into_iter()
            .filter(|member| !session[*member].is_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("not strings: {}", missing.join(", ")))
        }
    });
    recorder.check(
        section,
        "downloadUrl has {accountId} {blobId} {type} {name}",
        {
            check_template(
                session,
                "downloadUrl",
                &["accountId", "blobId", "type", "name"],
            )
        },
    );
    recorder.check(section, "uploadUrl has {accountId}", {
        check_template(session, "uploadUrl", &["accountId"])
    });
    recorder.check(section, "eventSourceUrl has {types} {closeafter} {ping}", {
        check_template(session, "eventSourceUrl", &["types", "closeafter", "ping"])
    });
    let username_matches =
        session["username"].as_str() == Some(target.config.credentials.user.as_str());
    recorder.record(
        section,
        "username is the login name",
        if username_matches {
            crate::Outcome::Pass
        } else {
            crate::Outcome::Skip(format!("server names the user {}", session["username"]))
        },
    );
}

fn check_accounts(session: &Value) -> Result<(), String> {
    let accounts = session["accounts"]
        .as_object()
        .ok_or("accounts is not an object")?;
    if accounts.is_empty() {
        return Err("accounts is empty".to_owned());
    }
    for (id, account) in accounts {
        if !is_jmap_id(id) {
            return Err(format!("account id {id:?} is not an Id (RFC 8620 §1.2)"));
        }
        let well_formed = account["name"].is_string()
            && account["isPersonal"].is_boolean()
            && account["isReadOnly"].is_boolean()
            && account["accountCapabilities"].is_object();
        if !well_formed {
            return Err(format!("account {id}: {account}"));
        }
    }
    Ok(())
}

fn check_primary_accounts(session: &Value) -> Result<(), String> {
    let primary = session["primaryAccounts"]
        .as_object()
        .ok_or("primaryAccounts is not an object")?;
    for (capability, account_id) in primary {
        let Some(account_id) = account_id.as_str() else {
            return Err(format!("primaryAccounts[{capability}] is not a string"));
        };
        if session["accounts"].get(account_id).is_none() {
            return Err(format!(
                "primaryAccounts[{capability}] = {account_id} is not in accounts"
            ));
        }
    }
    Ok(())
}

fn check_template(session: &Value, member: &str, variables: &[&str]) -> Result<(), String> {
    let template = session[member]
        .as_str()
        .ok_or_else(|| format!("{member} is not a string"))?;
    let missing: Vec<&str> = variables
        .iter()
        .copied()
        .filter(|variable| !template.contains(&format!("{{{variable}}}")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{member} {template:?} lacks {}",
            missing.join(", ")
        ))
    }
}
