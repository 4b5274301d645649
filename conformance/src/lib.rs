//! Black-box conformance runner for JMAP servers (RFC 8620 core).
//!
//! It talks HTTP to any server given a session URL and credentials, runs the known-answer
//! fixtures under `conformance/cases/` (request + expected-response patterns, see
//! [`matcher`]) and the flows that need several steps (upload then ranged download, Blob/copy,
//! limits, authentication), and reports pass/fail per RFC 8620 section.
//!
//! The binary `tern-conformance` is a thin command line over [`run`]; Tern's integration tests
//! call [`run`] in-process against a server they started.

pub mod fixtures;
mod flows;
pub mod http;
pub mod matcher;
pub mod outbound;
mod raw;
mod session;
mod sharing;
pub mod smtp;

use std::time::Duration;

use serde::Serialize;

/// The section labels results are grouped under, in report order.
pub mod sections {
    pub const SESSION: &str = "§2 session resource";
    pub const REQUEST: &str = "§3.3 request";
    pub const RESPONSE: &str = "§3.4 response";
    pub const REQUEST_ERRORS: &str = "§3.6.1 request-level errors";
    pub const METHOD_ERRORS: &str = "§3.6.2 method-level errors";
    pub const RESULT_REFERENCES: &str = "§3.7 result references";
    pub const ECHO: &str = "§4 Core/echo";
    pub const UPLOAD: &str = "§6.1 upload";
    pub const DOWNLOAD: &str = "§6.2 download";
    pub const BLOB_COPY: &str = "§6.3 Blob/copy";
    pub const AUTH: &str = "auth/401";
    pub const ISOLATION: &str = "account isolation";
    pub const MAIL_EMAIL_PARSE: &str =
        "RFC 8621 §4.1 Email properties from the message, §4.9 Email/parse";
    pub const MAIL_EMAIL_CREATE: &str = "RFC 8621 §4.6 Email/set create";
    pub const MAIL_IDENTITY: &str = "RFC 8621 §6 Identity";
    pub const MAIL_VACATION_RESPONSE: &str = "RFC 8621 §8 VacationResponse";
    pub const MAIL_EMAIL_SUBMISSION: &str = "RFC 8621 §7 EmailSubmission";
    pub const MAIL_MAILBOX: &str = "RFC 8621 §2 Mailbox";
    pub const MAIL_EMAIL_THREAD: &str = "RFC 8621 §3–4 Email and Thread";
    pub const MAIL_SEARCH: &str = "RFC 8621 §4.4 Email/query text filters, §5 SearchSnippet";
    pub const PUSH: &str = "RFC 8887 §3 WebSocket capability, RFC 8620 §7.2 PushSubscription";
    pub const QUOTA: &str = "RFC 9425 Quotas";
    pub const SHARING: &str = "RFC 9670 sharing, Principals, cross-account copy";
    pub const BLOB_MANAGEMENT: &str = "RFC 9404 Blob management";
    pub const MDN: &str = "RFC 9007 MDN";
    pub const SIEVE: &str = "RFC 9661 Sieve";

    pub const ALL: &[&str] = &[
        SESSION,
        REQUEST,
        RESPONSE,
        REQUEST_ERRORS,
        METHOD_ERRORS,
        RESULT_REFERENCES,
        ECHO,
        UPLOAD,
        DOWNLOAD,
        BLOB_COPY,
        AUTH,
        ISOLATION,
        MAIL_MAILBOX,
        MAIL_EMAIL_THREAD,
        MAIL_SEARCH,
        MAIL_EMAIL_PARSE,
        MAIL_EMAIL_CREATE,
        MAIL_IDENTITY,
        MAIL_EMAIL_SUBMISSION,
        MAIL_VACATION_RESPONSE,
        PUSH,
        QUOTA,
        SHARING,
        BLOB_MANAGEMENT,
        MDN,
        SIEVE,
    ];
}

/// Credentials of a user on the server under test.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// What to test and how to log in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The JMAP session resource, e.g. `http://127.0.0.1:8080/.well-known/jmap`.
    pub session_url: String,
    pub credentials: Credentials,
    /// A bearer token for the same user; enables the bearer-authentication cases.
    pub bearer: Option<String>,
    /// A second user; enables the account-isolation cases (another account's id, blobs).
    pub second_user: Option<Credentials>,
    /// Run only the sections whose label contains this text (e.g. `3.6`, `upload`).
    pub filter: Option<String>,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl Config {
    pub fn new(
        session_url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            session_url: session_url.into(),
            credentials: Credentials {
                user: user.into(),
                password: password.into(),
            },
            bearer: None,
            second_user: None,
            filter: None,
            request_timeout: Duration::from_secs(10),
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|filter| section.to_lowercase().contains(&filter.to_lowercase()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub section: String,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Every case's result, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub results: Vec<CaseResult>,
}

impl Report {
    fn count(&self, predicate: impl Fn(&Outcome) -> bool) -> usize {
        self.results
            .iter()
            .filter(|result| predicate(&result.outcome))
            .count()
    }

    pub fn passed(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Pass))
    }

    pub fn failed(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Fail(_)))
    }

    pub fn skipped(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Skip(_)))
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.results
            .iter()
            .filter(|result| matches!(result.outcome, Outcome::Fail(_)))
    }

    /// `N passed, N failed` with `, N skipped` when some were skipped.
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            line.push_str(&format!(", {} skipped", self.skipped()));
        }
        line
    }

    /// A human-readable report grouped by section, ending with the summary line.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        let mut section_order: Vec<&str> = sections::ALL.to_vec();
        for result in &self.results {
            if !section_order.contains(&result.section.as_str()) {
                section_order.push(&result.section);
            }
        }
        for section in section_order {
            let in_section: Vec<&CaseResult> = self
                .results
                .iter()
                .filter(|result| result.section == section)
                .collect();
            if in_section.is_empty() {
                continue;
            }
            let failed = in_section
                .iter()
                .filter(|result| matches!(result.outcome, Outcome::Fail(_)))
                .count();
            let verdict = if failed == 0 { "PASS" } else { "FAIL" };
            text.push_str(&format!(
                "{verdict} {section} ({} cases, {failed} failed)\n",
                in_section.len()
            ));
            for result in in_section {
                match &result.outcome {
                    Outcome::Pass => text.push_str(&format!("  pass  {}\n", result.name)),
                    Outcome::Fail(reason) => {
                        text.push_str(&format!("  FAIL  {}\n        {reason}\n", result.name))
                    }
                    Outcome::Skip(reason) => {
                        text.push_str(&format!("  skip  {} ({reason})\n", result.name))
                    }
                }
            }
        }
        text.push_str(&self.summary_line());
        text.push('\n');
        text
    }
}

/// Collects results, honouring the section filter.
pub(crate) struct Recorder<'a> {
    config: &'a Config,
    report: Report,
}

impl<'a> Recorder<'a> {
    fn new(config: &'a Config) -> Self {
        Self {
            config,
            report: Report::default(),
        }
    }

    pub(crate) fn wants(&self, section: &str) -> bool {
        self.config.wants(section)
    }

    pub(crate) fn record(&mut self, section: &str, name: impl Into<String>, outcome: Outcome) {
        debug_assert!(
            self.wants(section),
            "recorded a case of a filtered-out section"
        );
        self.report.results.push(CaseResult {
            section: section.to_owned(),
            name: name.into(),
            outcome,
        });
    }

    pub(crate) fn check(
        &mut self,
        section: &str,
        name: impl Into<String>,
        result: Result<(), String>,
    ) {
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(reason) => Outcome::Fail(reason),
        };
        self.record(section, name, outcome);
    }
}

/// Runs every case selected by `config` against the server and returns the results.
/// Never panics on server misbehaviour: each problem becomes a failed case.
pub async fn run(config: &Config) -> Report {
    let mut recorder = Recorder::new(config);
    let target = match session::Target::connect(config).await {
        Ok(target) => target,
        Err(reason) => {
            // Without a session resource nothing else can be located.
            recorder.report.results.push(CaseResult {
                section: sections::SESSION.to_owned(),
                name: "fetch the session resource with the user's credentials".to_owned(),
                outcome: Outcome::Fail(reason),
            });
            return recorder.report;
        }
    };
    if recorder.wants(sections::SESSION) {
        session::check_session(&target, &mut recorder);
    }
    fixtures::run_embedded(&target, &mut recorder).await;
    flows::run_all(&target, &mut recorder).await;
    sharing::run(&target, &mut recorder, flows::run_seed()).await;
    recorder.report
}
