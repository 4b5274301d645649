//! Known-answer cases kept as data: JSON files under `conformance/cases/`, compiled into the
//! binary so the runner works from any directory. The file format is described in
//! `conformance/cases/README.md`.

use serde::Deserialize;
use serde_json::Value;

use crate::http::{Auth, Outgoing};
use crate::matcher::{abbreviate, matches, substitute};
use crate::session::Target;
use crate::{Outcome, Recorder};

/// Every fixture file, by name (the name only appears in failure messages).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("request.json", include_str!("../cases/request.json")),
    ("response.json", include_str!("../cases/response.json")),
    (
        "request-errors.json",
        include_str!("../cases/request-errors.json"),
    ),
    (
        "method-errors.json",
        include_str!("../cases/method-errors.json"),
    ),
    (
        "result-references.json",
        include_str!("../cases/result-references.json"),
    ),
    ("echo.json", include_str!("../cases/echo.json")),
    ("blob-copy.json", include_str!("../cases/blob-copy.json")),
    (
        "blob-management.json",
        include_str!("../cases/blob-management.json"),
    ),
    ("mailbox.json", include_str!("../cases/mailbox.json")),
    (
        "email-parse.json",
        include_str!("../cases/email-parse.json"),
    ),
    ("email.json", include_str!("../cases/email.json")),
    (
        "email-create.json",
        include_str!("../cases/email-create.json"),
    ),
    ("identity.json", include_str!("../cases/identity.json")),
    (
        "vacation-response.json",
        include_str!("../cases/vacation-response.json"),
    ),
    ("auth.json", include_str!("../cases/auth.json")),
    ("push.json", include_str!("../cases/push.json")),
    ("search.json", include_str!("../cases/search.json")),
    ("quota.json", include_str!("../cases/quota.json")),
    ("sharing.json", include_str!("../cases/sharing.json")),
    ("mdn.json", include_str!("../cases/mdn.json")),
    ("sieve.json", include_str!("../cases/sieve.json")),
    (
        "email-submission.json",
        include_str!("../cases/email-submission.json"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    pub section: String,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    pub name: String,
    /// Variables the case needs; it is skipped when one is unavailable (e.g. `otherAccountId`
    /// without a second user).
    #[serde(default)]
    pub requires: Vec<String>,
    pub request: CaseRequest,
    pub expect: Expectation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseRequest {
    #[serde(default)]
    pub endpoint: Endpoint,
    #[serde(default)]
    pub auth: AuthChoice,
    /// Defaults to `application/json` when a body is sent.
    pub content_type: Option<String>,
    /// A JSON body, serialized after variable substitution.
    pub body: Option<Value>,
    /// A body sent byte for byte (for malformed JSON).
    pub raw_body: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// POST to the session's apiUrl.
    #[default]
    Api,
    /// GET the session resource.
    Session,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub enum AuthChoice {
    #[default]
    User,
    None,
    WrongPassword,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expectation {
    /// One status or a list of acceptable ones.
    pub status: StatusSet,
    /// The media type of the answer (parameters ignored).
    pub media_type: Option<String>,
    /// Headers that must be present (any value).
    #[serde(default)]
    pub headers_present: Vec<String>,
    /// A pattern for the JSON body.
    pub body: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Any(Vec<u16>),
}

impl StatusSet {
    fn contains(&self, status: u16) -> bool {
        match self {
            Self::One(expected) => *expected == status,
            Self::Any(expected) => expected.contains(&status),
        }
    }
}

/// Parses every embedded fixture file; a malformed file is a bug in the runner itself.
pub fn parse_embedded() -> Result<Vec<FixtureFile>, String> {
    EMBEDDED
        .iter()
        .map(|(name, text)| {
            serde_json::from_str::<FixtureFile>(text).map_err(|error| format!("{name}: {error}"))
        })
        .collect()
}

pub(crate) async fn run_embedded(target: &Target, recorder: &mut Recorder<'_>) {
    let files = match parse_embedded() {
        Ok(files) => files,
        Err(reason) => {
            recorder.record(
                "fixtures",
                "parse embedded fixture files",
                Outcome::Fail(reason),
            );
            return;
        }
    };
    for file in files {
        if !recorder.wants(&file.section) {
            continue;
        }
        for case in &file.cases {
            let outcome = run_case(target, case).await;
            recorder.record(&file.section, case.name.clone(), outcome);
        }
    }
}

async fn run_case(target: &Target, case: &Case) -> Outcome {
    if let Some(missing) = case
        .requires
        .iter()
        .find(|variable| !target.variables.contains_key(*variable))
    {
        return Outcome::Skip(format!("needs {missing} (configure a second user)"));
    }
    match execute(target, case).await {
        Ok(()) => Outcome::Pass,
        Err(reason) => Outcome::Fail(reason),
    }
}

async fn execute(target: &Target, case: &Case) -> Result<(), String> {
    let wrong_password_auth = Auth::basic(
        &target.config.credentials.user,
        &format!("{}-wrong", target.config.credentials.password),
    );
    let auth = match case.request.auth {
        AuthChoice::User => &target.auth,
        AuthChoice::None => &Auth::Anonymous,
        AuthChoice::WrongPassword => &wrong_password_auth,
    };
    let body = match (&case.request.body, &case.request.raw_body) {
        (Some(json_body), None) => substitute(json_body, &target.variables)?
            .to_string()
            .into_bytes(),
        (None, Some(raw)) => raw.clone().into_bytes(),
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => return Err("fixture has both body and rawBody".to_owned()),
    };
    let (method, url) = match case.request.endpoint {
        Endpoint::Api => (reqwest::Method::POST, target.api_url.as_str()),
        Endpoint::Session => (reqwest::Method::GET, target.config.session_url.as_str()),
    };
    let content_type = case
        .request
        .content_type
        .as_deref()
        .or((!body.is_empty()).then_some("application/json"));
    let answer = target
        .http
        .send(Outgoing {
            method,
            url,
            auth,
            content_type,
            extra_headers: &[],
            body,
        })
        .await?;

    let expect = &case.expect;
    if !expect.status.contains(answer.status) {
        return Err(format!(
            "HTTP status {} (expected {:?}); body: {}",
            answer.status,
            expect.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
        ));
    }
    if let Some(media_type) = &expect.media_type
        && answer.media_type() != media_type.to_ascii_lowercase()
    {
        return Err(format!(
            "Content-Type {:?} (expected {media_type})",
            answer.header("content-type").unwrap_or("")
        ));
    }
    for header in &expect.headers_present {
        if answer.header(header).is_none() {
            return Err(format!("header {header} missing"));
        }
    }
    if let Some(pattern) = &expect.body {
        let pattern = substitute(pattern, &target.variables)?;
        let actual = answer.json()?;
        matches(&pattern, &actual).map_err(|difference| {
            format!(
                "{difference}\n        whole answer: {}",
                abbreviate(&actual)
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fixtures_parse() {
        let files = parse_embedded().unwrap();
        assert_eq!(files.len(), EMBEDDED.len());
        for file in &files {
            assert!(
                crate::sections::ALL.contains(&file.section.as_str()),
                "unknown section {}",
                file.section
            );
            assert!(!file.cases.is_empty());
        }
    }
}
