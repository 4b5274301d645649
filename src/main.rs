//! The `tern` command: parses the command line and hands over to the library. Account and
//! token commands open the data directory directly when no server runs, and go through the
//! running server's admin endpoint when one holds the directory (the embedded store is
//! single-process); the user does not have to care which.

use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod directory_commands;

use tern::auth::{AccountInfo, Directory, DirectoryError};
use tern::config::Config;
use tern::http::admin_client::{AdminClient, AdminClientError};
use tern::mail::quota::{DomainQuotaReport, LimitsChange, QuotaReport};
use tern::server::{RunningServer, Server, StartErrorKind, open_store};
use tern::store::StoreErrorKind;

#[derive(Parser)]
#[command(name = "tern", version, about = "Tern: a JMAP mail server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage groups (shared principals with a team account; RFC 9670).
    #[command(subcommand)]
    Group(directory_commands::GroupCommand),
    /// Manage bearer API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the full-text search index.
    #[command(subcommand)]
    Index(IndexCommand),
    /// The outbound mail queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Mail domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Messages quarantined for a virus found after they were accepted.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The nodes sharing a FoundationDB store, and which node owns which account.
    #[command(subcommand)]
    Cluster(directory_commands::ClusterCommand),
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List quarantined messages.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Deliver a quarantined message to its recipients after all.
    Release {
        id: u64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete a quarantined message.
    Delete {
        id: u64,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// List queued messages, with each recipient's state (the error queue included).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Retry a message now (also takes it out of the error queue).
    Retry {
        id: u64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a message from the queue (no bounce is sent).
    Cancel {
        id: u64,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Make a domain local, generate its DKIM key and print the DNS records to publish.
    Add {
        domain: String,
        /// The DKIM key type.
        #[arg(long, value_parser = ["rsa", "ed25519"], default_value = "rsa")]
        algorithm: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Show a domain's quota (RFC 9425 scope "domain": every account of the domain together)
    /// and usage, or set its limits (--reset: none).
    Quota {
        domain: String,
        #[command(flatten)]
        limits: QuotaArgs,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A change of quota limits (`tern account quota`, `tern domain quota`).
#[derive(Args)]
struct QuotaArgs {
    /// Octets of Emails: a size such as 5GB or 500MiB; 0: no limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    storage: Option<u64>,
    /// Number of Emails; 0: no limit.
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// Warn at this percentage of a limit; 0: never.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    warn_percent: Option<u8>,
    /// Drop these limits.
    #[arg(long, conflicts_with_all = ["storage", "messages", "warn_percent"])]
    reset: bool,
}

impl QuotaArgs {
    fn change(self) -> LimitsChange {
        LimitsChange {
            reset: self.reset,
            storage: self.storage,
            messages: self.messages,
            warn_percent: self.warn_percent,
        }
    }
}

#[derive(Args)]
struct DataArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// JMAP listen address (overrides server.http).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Create alice@example.test and bob@example.test on first start.
    #[arg(long)]
    demo: bool,
    /// TLS certificate chain, PEM (overrides server.tls_cert).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (overrides server.tls_key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Smarthost for all non-local mail, HOST:PORT (overrides outbound.relay).
    #[arg(long, value_name = "HOST:PORT")]
    relay: Option<String>,
    /// The DNS server for SPF/DKIM/DMARC and MX lookups, IP:PORT (overrides dns.nameserver).
    #[arg(long, value_name = "ADDR")]
    dns: Option<SocketAddr>,
    /// SMTP MX listen address (overrides smtp.listen; default 127.0.0.1:2525).
    #[arg(long, value_name = "ADDR")]
    smtp: Option<SocketAddr>,
    /// SMTP submission listener with STARTTLS, 587 style (overrides smtp.submission).
    #[arg(long, value_name = "ADDR")]
    submission: Option<SocketAddr>,
    /// SMTP submission listener with implicit TLS, 465 style (overrides smtp.submissions).
    #[arg(long, value_name = "ADDR")]
    submissions: Option<SocketAddr>,
}

#[derive(Args)]
struct PasswordArgs {
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long, value_name = "P", conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account; without a password option one is generated and printed once.
    Create {
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete an account and its tokens.
    Delete {
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Show an account's quota (RFC 9425) and usage, or set its own limits (--reset: the
    /// server defaults, [quota], apply again).
    Quota {
        email: String,
        #[command(flatten)]
        limits: QuotaArgs,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Change a password; without a password option one is generated and printed once.
    Passwd {
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Rebuild the index from the store (every account, or one); searches stay exact meanwhile.
    Rebuild {
        /// Only this account.
        #[arg(long, value_name = "EMAIL")]
        account: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bearer API token for an account, printed once.
    Create {
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A failure to report: one line, non-zero exit.
struct CliError(String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(error: E) -> CliError {
        CliError(error.to_string())
    }
}

fn load_config(data: &DataArgs) -> Result<Config, CliError> {
    let mut config = Config::load(data.config.as_deref())?;
    if let Some(data_dir) = &data.data_dir {
        config.server.data_dir = data_dir.clone();
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tern: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    drop(runtime);
    // The FoundationDB client network thread must be stopped once, after every store closed.
    #[cfg(feature = "foundationdb")]
    tern::store::fdb::stop_network();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError(message)) => {
            eprintln!("tern: error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Account(AccountCommand::Create {
            email,
            password,
            data,
        }) => {
            let (password, generated) = password_from(&password)?;
            let config = load_config(&data)?;
            let info = directory_operation(
                &config,
                Operation::Create {
                    email,
                    password: password.clone(),
                },
                true,
            )
            .await?
            .account()?;
            println!("created account {} (id {})", info.email, info.account_id);
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Account(AccountCommand::List { data }) => {
            let config = load_config(&data)?;
            let accounts = match directory_operation(&config, Operation::List, false).await? {
                Outcome::Accounts(accounts) => accounts,
                _ => return Err(CliError("unexpected answer".into())),
            };
            for account in accounts {
                println!("{}\t{}", account.account_id, account.email);
            }
            Ok(())
        }
        Command::Account(AccountCommand::Quota {
            email,
            limits,
            data,
        }) => {
            let config = load_config(&data)?;
            let change = limits.change();
            match directory_operation(&config, Operation::Quota { email, change }, false).await? {
                Outcome::Quota(report) => println!("{report}"),
                _ => return Err(CliError("unexpected answer".into())),
            }
            Ok(())
        }
        Command::Domain(DomainCommand::Quota {
            domain,
            limits,
            data,
        }) => {
            let config = load_config(&data)?;
            let change = limits.change();
            let operation = Operation::DomainQuota { domain, change };
            match directory_operation(&config, operation, false).await? {
                Outcome::DomainQuota(report) => println!("{report}"),
                _ => return Err(CliError("unexpected answer".into())),
            }
            Ok(())
        }
        Command::Account(AccountCommand::Delete { email, data }) => {
            let config = load_config(&data)?;
            let info = directory_operation(&config, Operation::Delete { email }, false)
                .await?
                .account()?;
            println!("deleted account {} (id {})", info.email, info.account_id);
            Ok(())
        }
        Command::Account(AccountCommand::Passwd {
            email,
            password,
            data,
        }) => {
            let (password, generated) = password_from(&password)?;
            let config = load_config(&data)?;
            directory_operation(
                &config,
                Operation::Passwd {
                    email: email.clone(),
                    password: password.clone(),
                },
                false,
            )
            .await?;
            println!("password changed for {}", email.trim().to_lowercase());
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Index(IndexCommand::Rebuild { account, data }) => {
            let config = load_config(&data)?;
            rebuild_index(&config, account).await
        }
        Command::Queue(command) => {
            let (data, operation) = match command {
                QueueCommand::List { data } => (data, tern::outbound::cli::Operation::List),
                QueueCommand::Retry { id, data } => {
                    (data, tern::outbound::cli::Operation::Retry(id))
                }
                QueueCommand::Cancel { id, data } => {
                    (data, tern::outbound::cli::Operation::Cancel(id))
                }
            };
            let config = load_config(&data)?;
            println!("{}", tern::outbound::cli::run(&config, operation).await?);
            Ok(())
        }
        Command::Cluster(command) => directory_commands::cluster(command).await,
        Command::Group(command) => directory_commands::group(command).await,
        Command::Quarantine(command) => {
            use tern::smtp::quarantine::Operation;
            let (data, operation) = match command {
                QuarantineCommand::List { data } => (data, Operation::List),
                QuarantineCommand::Release { id, data } => (data, Operation::Release(id)),
                QuarantineCommand::Delete { id, data } => (data, Operation::Delete(id)),
            };
            let config = load_config(&data)?;
            println!("{}", tern::smtp::quarantine::run(&config, operation).await?);
            Ok(())
        }
        Command::Domain(DomainCommand::Add {
            domain,
            algorithm,
            data,
        }) => {
            let config = load_config(&data)?;
            let algorithm = if algorithm == "ed25519" {
                tern::outbound::dkim::KeyAlgorithm::Ed25519
            } else {
                tern::outbound::dkim::KeyAlgorithm::Rsa
            };
            let operation = tern::outbound::cli::Operation::AddDomain { domain, algorithm };
            println!("{}", tern::outbound::cli::run(&config, operation).await?);
            Ok(())
        }
        Command::Token(TokenCommand::Create { email, data }) => {
            let config = load_config(&data)?;
            match directory_operation(&config, Operation::Token { email }, false).await? {
                Outcome::Token(token) => println!("{token}"),
                _ => return Err(CliError("unexpected answer".into())),
            }
            Ok(())
        }
    }
}

/// `tern cluster ...`: straight on the shared store (FoundationDB).
/// `tern index rebuild`: on a stopped data directory the tasks are queued for the next start;
/// with a running server, through its admin endpoint, which starts at once.
async fn rebuild_index(config: &Config, account: Option<String>) -> Result<(), CliError> {
    let data_dir = &config.server.data_dir;
    if !data_dir.exists() {
        return Err(CliError(format!(
            "data directory {} does not exist (use --data-dir or --config)",
            data_dir.display()
        )));
    }
    match open_store(config).await {
        Ok(store) => {
            let directory = Directory::new(store.clone());
            let outcome = tern::search::rebuild::rebuild(&directory, account.as_deref()).await;
            drop(directory);
            store.close().await?;
            for (info, emails) in outcome.map_err(|error| CliError(error.message))? {
                println!(
                    "index rebuild queued for {} ({emails} emails); it runs when the server starts",
                    info.email
                );
            }
            Ok(())
        }
        Err(error) if error.kind == StoreErrorKind::Locked => {
            let client = AdminClient::connect(data_dir)
                .await
                .map_err(|reach| locked_message(data_dir, &reach))?;
            let refused = |error: AdminClientError| match error {
                AdminClientError::Unreachable(message) => CliError(message),
                AdminClientError::Refused { message, .. } => CliError(message),
            };
            let emails = match account {
                Some(email) => vec![email],
                None => client
                    .list_accounts()
                    .await
                    .map_err(refused)?
                    .into_iter()
                    .map(|info| info.email)
                    .collect(),
            };
            for email in emails {
                let count = client.rebuild_index(&email).await.map_err(refused)?;
                println!("index rebuild started for {email} ({count} emails)");
            }
            Ok(())
        }
        Err(error) => Err(CliError(error.message)),
    }
}

/// The password to use and whether it was generated (and so must be printed).
fn password_from(args: &PasswordArgs) -> Result<(String, bool), CliError> {
    if let Some(password) = &args.password {
        return Ok((password.clone(), false));
    }
    if !args.password_stdin {
        return Ok((tern::auth::password::generate(), true));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError("no password on standard input".into()));
    }
    Ok((password, false))
}

enum Operation {
    Create {
        email: String,
        password: String,
    },
    List,
    Delete {
        email: String,
    },
    Passwd {
        email: String,
        password: String,
    },
    Token {
        email: String,
    },
    Quota {
        email: String,
        change: LimitsChange,
    },
    DomainQuota {
        domain: String,
        change: LimitsChange,
    },
}

enum Outcome {
    Account(AccountInfo),
    Accounts(Vec<AccountInfo>),
    Done,
    Token(String),
    Quota(QuotaReport),
    DomainQuota(DomainQuotaReport),
}

impl Outcome {
    fn account(self) -> Result<AccountInfo, CliError> {
        match self {
            Outcome::Account(info) => Ok(info),
            _ => Err(CliError("unexpected answer".into())),
        }
    }
}

/// Runs `operation` on the data directory, directly or through the running server.
async fn directory_operation(
    config: &Config,
    operation: Operation,
    may_create_data_dir: bool,
) -> Result<Outcome, CliError> {
    let data_dir = &config.server.data_dir;
    if !may_create_data_dir && !data_dir.exists() {
        return Err(CliError(format!(
            "data directory {} does not exist (use --data-dir or --config)",
            data_dir.display()
        )));
    }
    match open_store(config).await {
        Ok(store) => {
            let directory = Directory::new(store.clone());
            let outcome = run_locally(&directory, operation).await;
            drop(directory);
            store.close().await?;
            outcome.map_err(|error| CliError(error.message))
        }
        Err(error) if error.kind == StoreErrorKind::Locked => {
            let client = AdminClient::connect(data_dir)
                .await
                .map_err(|reach| locked_message(data_dir, &reach))?;
            run_remotely(&client, operation)
                .await
                .map_err(|error| match error {
                    AdminClientError::Unreachable(message) => CliError(message),
                    AdminClientError::Refused { message, .. } => CliError(message),
                })
        }
        Err(error) => Err(CliError(error.message)),
    }
}

fn locked_message(data_dir: &Path, reach: &AdminClientError) -> CliError {
    CliError(format!(
        "data directory {} is locked by another process that is not a reachable Tern \
         server ({reach})",
        data_dir.display()
    ))
}

async fn run_locally(
    directory: &Directory,
    operation: Operation,
) -> Result<Outcome, DirectoryError> {
    Ok(match operation {
        Operation::Create { email, password } => {
            Outcome::Account(directory.create_account(&email, &password).await?)
        }
        Operation::List => Outcome::Accounts(directory.list_accounts().await?),
        Operation::Delete { email } => Outcome::Account(directory.delete_account(&email).await?),
        Operation::Passwd { email, password } => {
            directory.set_password(&email, &password).await?;
            Outcome::Done
        }
        Operation::Token { email } => Outcome::Token(directory.create_token(&email).await?),
        Operation::Quota { email, change } => {
            let account_id = directory.account(&email).await?.account_id;
            let store = directory.store();
            Outcome::Quota(match change.is_empty() {
                true => tern::mail::quota::report(store, account_id).await?,
                false => tern::mail::quota::change_limits(store, account_id, change).await?,
            })
        }
        Operation::DomainQuota { domain, change } => {
            Outcome::DomainQuota(directory.domain_quota(&domain, change).await?)
        }
    })
}

async fn run_remotely(
    client: &AdminClient,
    operation: Operation,
) -> Result<Outcome, AdminClientError> {
    Ok(match operation {
        Operation::Create { email, password } => {
            Outcome::Account(client.create_account(&email, &password).await?)
        }
        Operation::List => Outcome::Accounts(client.list_accounts().await?),
        Operation::Delete { email } => Outcome::Account(client.delete_account(&email).await?),
        Operation::Passwd { email, password } => {
            client.set_password(&email, &password).await?;
            Outcome::Done
        }
        Operation::Token { email } => Outcome::Token(client.create_token(&email).await?),
        Operation::Quota { email, change } => Outcome::Quota(client.quota(&email, &change).await?),
        Operation::DomainQuota { domain, change } => {
            Outcome::DomainQuota(client.domain_quota(&domain, &change).await?)
        }
    })
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    tern::mail::quota::parse_size(text)
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut config = load_config(&args.data)?;
    if let Some(http) = args.http {
        config.server.http = http;
    }
    if args.demo {
        config.server.demo = true;
    }
    if let Some(cert) = args.tls_cert {
        config.server.tls_cert = Some(cert);
    }
    if let Some(key) = args.tls_key {
        config.server.tls_key = Some(key);
    }
    if let Some(relay) = args.relay {
        config.outbound.relay = Some(relay);
    }
    if let Some(dns) = args.dns {
        config.dns.nameserver = Some(dns);
    }
    if let Some(smtp) = args.smtp {
        config.smtp.listen = Some(smtp);
    }
    if let Some(submission) = args.submission {
        config.smtp.submission = Some(submission);
    }
    if let Some(submissions) = args.submissions {
        config.smtp.submissions = Some(submissions);
    }
    config.validate()?;
    let telemetry = tern::telemetry::init(&config.telemetry)?;
    let started = std::time::Instant::now();
    let server = match Server::start(config.clone()).await {
        Ok(server) => server,
        Err(error) => {
            let message = match error.kind {
                StartErrorKind::Locked => match AdminClient::connect(&config.server.data_dir).await
                {
                    Ok(client) => format!(
                        "data directory {} is in use by a running Tern server (pid {})",
                        config.server.data_dir.display(),
                        client.server_pid()
                    ),
                    Err(_) => format!(
                        "data directory {} is locked by another process",
                        config.server.data_dir.display()
                    ),
                },
                StartErrorKind::PortInUse => {
                    match AdminClient::connect(&config.server.data_dir).await {
                        Ok(client) => format!(
                            "{} (a Tern server, pid {}, already serves data directory {})",
                            error.message,
                            client.server_pid(),
                            config.server.data_dir.display()
                        ),
                        Err(_) => error.message,
                    }
                }
                _ => error.message,
            };
            telemetry.shutdown().await;
            return Err(CliError(message));
        }
    };
    announce(&server, started.elapsed());
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}

fn announce(server: &RunningServer, startup: std::time::Duration) {
    for account in &server.demo_accounts {
        println!(
            "demo account {} password {} (shown once)",
            account.email, account.password
        );
    }
    println!(
        "Tern serving JMAP at {} (session {}) in {} ms",
        server.base_url,
        server.session_url(),
        startup.as_millis()
    );
}

async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                None
            }
        };
    let sigterm = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
