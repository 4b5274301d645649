//! `tern-conformance`: runs the RFC 8620 conformance cases against any JMAP server.
//!
//! ```text
//! tern-conformance --session-url http://127.0.0.1:8080/.well-known/jmap \
//!     --user alice@example.test --password secret [--bearer TOKEN] \
//!     [--user2 bob@example.test --password2 secret2] [--filter 3.6] [--json]
//! ```
//! Prints pass/fail per RFC section and ends with `N passed, N failed[, N skipped]`; exits 1
//! when any case failed, 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tern_conformance::{Config, Credentials};

#[derive(Parser, Debug)]
#[command(
    name = "tern-conformance",
    about = "Black-box RFC 8620 (JMAP Core) conformance runner"
)]
struct Arguments {
    /// The session resource URL, e.g. http://127.0.0.1:8080/.well-known/jmap
    #[arg(long)]
    session_url: String,
    /// Login name of the user under test
    #[arg(long)]
    user: String,
    /// That user's password
    #[arg(long)]
    password: String,
    /// A bearer token of the same user (enables the bearer cases)
    #[arg(long)]
    bearer: Option<String>,
    /// A second user (enables the account-isolation cases)
    #[arg(long, requires = "password2")]
    user2: Option<String>,
    /// The second user's password
    #[arg(long, requires = "user2")]
    password2: Option<String>,
    /// Run only sections whose label contains this text, e.g. "3.6" or "upload"
    #[arg(long)]
    filter: Option<String>,
    /// Print the report as JSON instead of text
    #[arg(long)]
    json: bool,
    /// Per-request timeout in seconds
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Also replay the SMTP C:/S: transcripts (conformance/cases/smtp-*.json) against this
    /// SMTP server (IP:PORT), delivering to --user
    #[arg(long)]
    smtp: Option<std::net::SocketAddr>,
    /// Also run the sending cases (conformance/cases/email-submission-outbound.json): listen
    /// on this IP:PORT as the server's next hop (the server must relay there)
    #[arg(long)]
    next_hop: Option<std::net::SocketAddr>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let mut config = Config::new(arguments.session_url, arguments.user, arguments.password);
    config.bearer = arguments.bearer;
    config.filter = arguments.filter;
    config.request_timeout = Duration::from_secs(arguments.timeout_secs.max(1));
    if let (Some(user), Some(password)) = (arguments.user2, arguments.password2) {
        config.second_user = Some(Credentials { user, password });
    }
    let mut report = tern_conformance::run(&config).await;
    if let Some(address) = arguments.next_hop {
        let sending = tern_conformance::outbound::run(&config, address).await;
        report.results.extend(sending.results);
    }
    let mut smtp_failed = 0;
    if let Some(address) = arguments.smtp {
        match tern_conformance::smtp::run(address, &config.credentials.user).await {
            Ok(outcomes) => {
                for outcome in &outcomes {
                    match &outcome.failure {
                        None => eprintln!("pass  SMTP {}: {}", outcome.section, outcome.name),
                        Some(why) => {
                            smtp_failed += 1;
                            eprintln!("FAIL  SMTP {}: {}: {why}", outcome.section, outcome.name);
                        }
                    }
                }
                eprintln!(
                    "SMTP: {} passed, {smtp_failed} failed",
                    outcomes.len() - smtp_failed
                );
            }
            Err(error) => {
                eprintln!("SMTP cases: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if arguments.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("cannot render the report: {error}");
                return ExitCode::from(2);
            }
        }
        eprintln!("{}", report.summary_line());
    } else {
        print!("{}", report.render_text());
    }
    if report.failed() > 0 || smtp_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
