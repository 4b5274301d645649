//! Bench tool: drives ANY JMAP server (by session URL and credentials) over loopback and prints
//! latency percentiles and throughput, so figures can be taken side by side with other servers.
//!
//! Run (server first, e.g. `cargo run --release -- serve --demo`):
//! ```text
//! cargo run --release --example bench -- --session-url http://127.0.0.1:8080/.well-known/jmap \
//!     --user alice@example.test --password PASS [--runs 5] <scenario>
//! ```
//! `abuse` (in `abuse.rs`) runs the attacks of the abuse suite while probing; `cluster-push`
//! and `failover` (in `cluster.rs`) drive two nodes of a cluster.
//! Scenarios (mail ones in `mail.rs`: mail-populate, mail-import, mail-query; push ones in
//! `push.rs`: ws-echo, push-latency, push-idle, eventsource-latency; search ones in `search.rs`:
//! search-query, search-freshness, search-rebuild, search-layout):
//! - `echo-latency`: Core/echo over ONE keep-alive connection, `--requests N` sequential calls;
//!   p50/p90/p99/max in ms.
//! - `echo-throughput`: `--connections C` (default 32) keep-alive connections for
//!   `--duration D` seconds; req/s and latency percentiles.
//! - `blob`: `--blob-size` (default 1 MiB) upload then download, `--iterations` times; MB/s
//!   each way.
//! - `rss`: VmRSS/VmHWM of `--server-pid PID` from /proc (no requests sent).
//! - `startup`: starts `--server-cmd "tern serve …"` `--runs` times, measures spawn → first
//!   answer on the session URL, reads idle RSS one second later, then stops it (SIGTERM).
//!
//! `--runs K` repeats a scenario and reports the median of the K runs (and the worst p99).
//! Every loop is bounded in count and time; only loopback addresses are accepted. The client
//! runs on one thread by default (`--client-threads`) so it leaves the other core(s) to the
//! server.

mod abuse;
mod blob;
mod cluster;
mod delivery;
mod mail;
mod outbound;
mod process;
mod push;
mod search;
mod smtp;
mod submission;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use process::{read_rss, startup};

/// Hard caps so a mistyped argument cannot run for hours.
const MAX_REQUESTS: u64 = 5_000_000;
const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_CONNECTIONS: usize = 4096;

struct Options {
    session_url: String,
    authorization: String,
    scenario: String,
    runs: usize,
    requests: u64,
    warmup: u64,
    connections: usize,
    duration: Duration,
    blob_size: usize,
    iterations: u64,
    client_threads: usize,
    server_pid: Option<u32>,
    server_cmd: Option<String>,
    /// mail-populate: messages to import.
    messages: u64,
    /// mail-populate / mail-import: bytes per message.
    message_size: usize,
    /// mail-populate: which messages (`--corpus words|realistic`).
    corpus: mail::Corpus,
    /// search-freshness / search-rebuild: the Tern server's data directory (admin endpoint).
    data_dir: Option<String>,
    /// smtp-push-latency, submission-latency: an SMTP address (`--smtp ADDR`).
    smtp: Option<SocketAddr>,
    /// smtp-push-latency: the recipient (`--user`).
    user: Option<String>,
    /// abuse: one attack (`--attack NAME`), or all.
    attack: Option<String>,
    /// abuse: how many loopback addresses the attackers use (127.0.1.1 …).
    attack_addresses: u8,
    /// Run the JMAP scenarios on this account instead of the user's primary one (an account
    /// shared with the user, RFC 9670).
    account: Option<String>,
    /// smtp-ingress: every address of `--smtp A,B,C` (sessions are spread over them).
    smtp_spread: Vec<SocketAddr>,
    /// cluster-push, failover: another node's base URL (`--observe-url`).
    observe_url: Option<String>,
    /// failover: a shell command run once the owner node is up, making it the account's
    /// owner (e.g. `tern cluster move USER a`).
    claim_cmd: Option<String>,
}

const USAGE: &str = "usage: bench --session-url URL (--user U --password P | --bearer TOKEN) \
[--runs K] [--requests N] [--warmup N] [--connections C] [--duration SECS] [--blob-size BYTES] \
[--iterations N] [--client-threads T] [--server-pid PID] [--server-cmd CMD] [--messages N] [--message-size BYTES] [--corpus words|realistic] [--data-dir DIR] [--attack NAME] [--attack-addresses N] [--account ID] \
<echo-latency|echo-throughput|blob|blob-range|rss|startup|mail-populate|mail-import|mail-query|\
search-query|search-freshness|search-rebuild|search-layout|\
ws-echo|push-latency|push-idle|eventsource-latency|smtp-push-latency (--smtp ADDR)|abuse|\
cluster-push|failover (--observe-url URL)>";

fn parse_options() -> Result<Options, String> {
    let mut arguments = std::env::args().skip(1);
    let mut session_url = None;
    let mut user = None;
    let mut password = None;
    let mut bearer = None;
    let mut scenario = None;
    let mut options = Options {
        session_url: String::new(),
        authorization: String::new(),
        scenario: String::new(),
        runs: 1,
        requests: 20_000,
        warmup: 2_000,
        connections: 32,
        duration: Duration::from_secs(10),
        blob_size: 1024 * 1024,
        iterations: 50,
        client_threads: 1,
        server_pid: None,
        server_cmd: None,
        messages: 100_000,
        message_size: 20 * 1024,
        corpus: mail::Corpus::Words,
        data_dir: None,
        smtp: None,
        user: None,
        attack: None,
        attack_addresses: 20,
        account: None,
        observe_url: None,
        smtp_spread: Vec::new(),
        claim_cmd: None,
    };
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{argument}: not a number: {text}"))
        };
        match argument.as_str() {
            "--session-url" => session_url = Some(value()?),
            "--user" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--bearer" => bearer = Some(value()?),
            "--runs" => {
                options.runs = usize::try_from(number(value()?)?.clamp(1, 100)).unwrap_or(1)
            }
            "--requests" => options.requests = number(value()?)?.clamp(1, MAX_REQUESTS),
            "--warmup" => options.warmup = number(value()?)?.min(MAX_REQUESTS),
            "--connections" => {
                options.connections = usize::try_from(number(value()?)?)
                    .unwrap_or(1)
                    .clamp(1, MAX_CONNECTIONS)
            }
            "--duration" => {
                options.duration = Duration::from_secs(number(value()?)?.max(1)).min(MAX_DURATION)
            }
            "--blob-size" => {
                options.blob_size = usize::try_from(number(value()?)?)
                    .unwrap_or(1)
                    .clamp(1, 256 * 1024 * 1024)
            }
            "--iterations" => options.iterations = number(value()?)?.clamp(1, 100_000),
            "--client-threads" => {
                options.client_threads =
                    usize::try_from(number(value()?)?).unwrap_or(1).clamp(1, 64)
            }
            "--server-pid" => {
                options.server_pid = Some(u32::try_from(number(value()?)?).map_err(|_| "bad pid")?)
            }
            "--server-cmd" => options.server_cmd = Some(value()?),
            "--messages" => options.messages = number(value()?)?.clamp(1, 10_000_000),
            "--message-size" => {
                options.message_size = usize::try_from(number(value()?)?)
                    .unwrap_or(1)
                    .clamp(256, 64 * 1024 * 1024)
            }
            "--corpus" => options.corpus = mail::Corpus::parse(&value()?)?,
            "--data-dir" => options.data_dir = Some(value()?),
            "--smtp" => {
                // Several (comma-separated) spread smtp-ingress sessions over a cluster's nodes.
                let mut addresses = Vec::new();
                for address in value()?.split(',') {
                    let address: SocketAddr = address
                        .parse()
                        .map_err(|_| "--smtp: not IP:PORT[,IP:PORT…]")?;
                    addresses.push(address);
                }
                options.smtp = addresses.first().copied();
                options.smtp_spread = addresses;
            }
            "--attack" => options.attack = Some(value()?),
            "--observe-url" => options.observe_url = Some(value()?),
            "--claim-cmd" => options.claim_cmd = Some(value()?),
            "--attack-addresses" => {
                options.attack_addresses =
                    u8::try_from(number(value()?)?.clamp(1, 250)).unwrap_or(20)
            }
            "--account" => options.account = Some(value()?),
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other}\n{USAGE}"));
            }
            other => scenario = Some(other.to_owned()),
        }
    }
    options.session_url = session_url.ok_or(USAGE)?;
    options.scenario = scenario.ok_or(USAGE)?;
    options.user = user.clone();
    options.authorization = match (bearer, user, password) {
        (Some(token), _, _) => format!("Bearer {token}"),
        (None, Some(user), Some(password)) => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
        _ if options.scenario == "rss" => String::new(),
        _ => return Err(format!("give --user and --password, or --bearer\n{USAGE}")),
    };
    Ok(options)
}

/// A parsed http:// URL on a loopback address.
#[derive(Clone)]
struct Endpoint {
    address: SocketAddr,
    host_header: String,
    path_and_query: String,
}

fn loopback_endpoint(url: &str) -> Result<Endpoint, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only plain http:// on loopback is supported"))?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |slash| (&rest[..slash], &rest[slash..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("bad port in {url}"))?,
        ),
        _ => (authority, 80),
    };
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        literal => literal
            .parse()
            .map_err(|_| format!("{url}: host must be a loopback IP or localhost"))?,
    };
    if !ip.is_loopback() {
        return Err(format!("{url}: refusing a non-loopback address"));
    }
    Ok(Endpoint {
        address: SocketAddr::new(ip, port),
        host_header: authority.to_owned(),
        path_and_query: path.to_owned(),
    })
}

/// What the session resource tells us, resolved to loopback endpoints.
#[derive(Clone)]
struct Target {
    authorization: String,
    api: Endpoint,
    upload: Endpoint,
    download_template: String,
    account_id: String,
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(address: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| format!("connect {address}: {error}"))?;
        stream
            .set_nodelay(true)
            .map_err(|error| error.to_string())?;
        Self::from_stream(stream).await
    }

    /// An HTTP/1.1 client connection over a connected stream.
    async fn from_stream(stream: TcpStream) -> Result<Self, String> {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it.
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    async fn exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), String> {
        let (status, _, body) = self.exchange_with_headers(request).await?;
        Ok((status, body))
    }

    /// Like `exchange`, with the response headers (push.rs reads `Server-Timing`).
    async fn exchange_with_headers(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        self.sender
            .ready()
            .await
            .map_err(|error| format!("connection lost: {error}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|error| format!("reading body: {error}"))?
            .to_bytes();
        Ok((status, parts.headers, body))
    }
}

fn build_request(
    method: &str,
    endpoint: &Endpoint,
    path_and_query: &str,
    authorization: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", &endpoint.host_header);
    if !authorization.is_empty() {
        builder = builder.header("authorization", authorization);
    }
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder
        .body(Full::new(body))
        .map_err(|error| error.to_string())
}

async fn discover(options: &Options) -> Result<Target, String> {
    let mut target = discover_session(&options.session_url, &options.authorization).await?;
    if let Some(account) = &options.account {
        target.account_id = account.clone();
    }
    Ok(target)
}

/// The session at `session_url` (another node of a cluster, say), as a target.
async fn discover_session(session_url: &str, authorization: &str) -> Result<Target, String> {
    let session_endpoint = loopback_endpoint(session_url)?;
    let mut connection = Connection::open(session_endpoint.address).await?;
    let request = build_request(
        "GET",
        &session_endpoint,
        &session_endpoint.path_and_query,
        authorization,
        None,
        Bytes::new(),
    )?;
    let (status, body) = connection.exchange(request).await?;
    if status != 200 {
        return Err(format!(
            "session resource answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let session: Value =
        serde_json::from_slice(&body).map_err(|error| format!("session is not JSON: {error}"))?;
    let absolute = |member: &str| -> Result<String, String> {
        let url = session[member]
            .as_str()
            .ok_or(format!("session lacks {member}"))?;
        if url.starts_with('/') {
            Ok(format!("http://{}{url}", session_endpoint.host_header))
        } else {
            Ok(url.to_owned())
        }
    };
    let account_id = session["primaryAccounts"]["urn:ietf:params:jmap:core"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            session["accounts"]
                .as_object()
                .and_then(|accounts| accounts.keys().next().cloned())
        })
        .ok_or("session lists no account")?;
    let upload_url = absolute("uploadUrl")?.replace("{accountId}", &account_id);
    Ok(Target {
        authorization: authorization.to_owned(),
        api: loopback_endpoint(&absolute("apiUrl")?)?,
        upload: loopback_endpoint(&upload_url)?,
        download_template: absolute("downloadUrl")?,
        account_id,
    })
}

const ECHO_BODY: &str = r#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"hello":true,"high":5},"b3ff"]]}"#;

/// Sends one Core/echo; answers the HTTP status (200 with a Core/echo body, or 429 when the
/// server refused it for maxConcurrentRequests). Anything else is an error.
async fn echo_status(connection: &mut Connection, target: &Target) -> Result<u16, String> {
    let request = build_request(
        "POST",
        &target.api,
        &target.api.path_and_query,
        &target.authorization,
        Some("application/json"),
        Bytes::from_static(ECHO_BODY.as_bytes()),
    )?;
    let (status, body) = connection.exchange(request).await?;
    match status {
        200 if body.windows(9).any(|window| window == b"Core/echo") => Ok(200),
        429 => Ok(429),
        _ => Err(format!(
            "Core/echo answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

async fn echo_once(connection: &mut Connection, target: &Target) -> Result<(), String> {
    match echo_status(connection, target).await? {
        200 => Ok(()),
        status => Err(format!("Core/echo answered HTTP {status}")),
    }
}

/// Latencies in nanoseconds, sorted on demand.
#[derive(Default)]
struct Samples {
    nanos: Vec<u64>,
}

impl Samples {
    fn push(&mut self, elapsed: Duration) {
        self.nanos
            .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    fn summary(mut self) -> Percentiles {
        self.nanos.sort_unstable();
        let at = |quantile: f64| -> f64 {
            if self.nanos.is_empty() {
                return f64::NAN;
            }
            let rank =
                ((quantile * self.nanos.len() as f64).ceil() as usize).clamp(1, self.nanos.len());
            self.nanos[rank - 1] as f64 / 1e6
        };
        Percentiles {
            count: self.nanos.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Milliseconds.
#[derive(Clone, Copy, Debug)]
struct Percentiles {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// One run's headline numbers, for the median over runs.
struct RunFigures {
    headline: f64,
    headline_unit: &'static str,
    p50: f64,
    p99: f64,
}

async fn echo_latency(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let deadline = Instant::now() + MAX_DURATION;
    for _ in 0..options.warmup {
        echo_once(&mut connection, target).await?;
    }
    let mut samples = Samples::default();
    for _ in 0..options.requests {
        if Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        echo_once(&mut connection, target).await?;
        samples.push(started.elapsed());
    }
    let summary = samples.summary();
    println!("  echo-latency (1 connection): {summary}");
    Ok(RunFigures {
        headline: summary.p50,
        headline_unit: "ms p50",
        p50: summary.p50,
        p99: summary.p99,
    })
}

async fn echo_throughput(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connections = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let mut connection = Connection::open(target.api.address).await?;
        echo_once(&mut connection, target).await?;
        connections.push(connection);
    }
    let started = Instant::now();
    let deadline = started + options.duration;
    let per_connection_cap = MAX_REQUESTS / options.connections as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for mut connection in connections {
        let target = Target {
            authorization: target.authorization.clone(),
            api: target.api.clone(),
            upload: target.upload.clone(),
            download_template: String::new(),
            account_id: String::new(),
        };
        tasks.spawn(async move {
            let mut samples = Samples::default();
            let mut rejected = 0u64;
            for _ in 0..per_connection_cap {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                match echo_status(&mut connection, &target).await? {
                    200 => samples.push(sent.elapsed()),
                    _ => rejected += 1,
                }
            }
            Ok::<(Samples, u64), String>((samples, rejected))
        });
    }
    let mut all = Samples::default();
    let mut rejected = 0u64;
    while let Some(joined) = tasks.join_next().await {
        let (samples, task_rejected) = joined.map_err(|error| error.to_string())??;
        all.nanos.extend(samples.nanos);
        rejected += task_rejected;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let summary = all.summary();
    // Only answered calls count; refusals (429, maxConcurrentRequests) are reported apart.
    let per_second = summary.count as f64 / elapsed;
    println!(
        "  echo-throughput ({} connections, {elapsed:.1}s): {per_second:.0} req/s, {rejected} refused (429), {summary}",
        options.connections
    );
    Ok(RunFigures {
        headline: per_second,
        headline_unit: "req/s",
        p50: summary.p50,
        p99: summary.p99,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

async fn run_scenario(options: &Options) -> Result<(), String> {
    if options.scenario == "rss" {
        let pid = options.server_pid.ok_or("rss needs --server-pid")?;
        let (rss_kb, peak_kb) = read_rss(pid)?;
        println!(
            "rss pid {pid}: VmRSS {:.1} MB, VmHWM {:.1} MB",
            rss_kb as f64 / 1024.0,
            peak_kb as f64 / 1024.0
        );
        return Ok(());
    }
    // startup and the in-process outbound scenarios need no server.
    let target = if options.scenario == "startup"
        || options.scenario == "failover"
        || options.scenario.starts_with("outbound-")
    {
        None
    } else {
        Some(discover(options).await?)
    };
    println!("scenario {} ({} run(s))", options.scenario, options.runs);
    let mut figures = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        let figure = match (options.scenario.as_str(), &target) {
            ("echo-latency", Some(target)) => echo_latency(options, target).await?,
            ("echo-throughput", Some(target)) => echo_throughput(options, target).await?,
            ("blob", Some(target)) => blob::transfer(options, target, run).await?,
            ("blob-range", Some(target)) => blob::range_get(options, target, run).await?,
            ("startup", _) => startup(options, run).await?,
            ("mail-populate", Some(target)) => mail::populate(options, target).await?,
            ("mail-import", Some(target)) => mail::import(options, target).await?,
            ("mail-query", Some(target)) => mail::query(options, target).await?,
            ("abuse", Some(target)) => abuse::abuse(options, target).await?,
            ("cluster-push", Some(target)) => cluster::cluster_push(options, target).await?,
            ("failover", _) => cluster::failover(options, run).await?,
            ("submission-latency", Some(target)) => {
                submission::submission_latency(options, target, run).await?
            }
            ("outbound-throughput", _) => outbound::throughput(options).await?,
            ("outbound-schedule", _) => outbound::schedule(options).await?,
            ("search-query", Some(target)) => search::query(options, target).await?,
            ("search-freshness", Some(target)) => search::freshness(options, target).await?,
            ("search-rebuild", Some(_)) => search::rebuild(options).await?,
            ("search-layout", Some(_)) => search::layout(options).await?,
            ("smtp-push-latency", Some(_)) => delivery::smtp_push_latency(options).await?,
            ("smtp-ingress", Some(target)) => smtp::ingress(options, target).await?,
            ("smtp-idle", Some(_)) => smtp::idle(options).await?,
            ("ws-echo", Some(_)) => push::ws_echo(options).await?,
            ("push-latency", Some(target)) => push::push_latency(options, target).await?,
            ("push-idle", Some(target)) => push::push_idle(options, target).await?,
            ("eventsource-latency", Some(target)) => {
                push::eventsource_latency(options, target).await?
            }
            (other, _) => return Err(format!("unknown scenario {other}\n{USAGE}")),
        };
        figures.push(figure);
    }
    let unit = figures.first().map_or("", |figure| figure.headline_unit);
    let mut headlines: Vec<f64> = figures.iter().map(|figure| figure.headline).collect();
    let mut p50s: Vec<f64> = figures.iter().map(|figure| figure.p50).collect();
    let mut p99s: Vec<f64> = figures.iter().map(|figure| figure.p99).collect();
    let worst_p99 = p99s.iter().copied().fold(f64::NAN, f64::max);
    if options.scenario == "startup" {
        println!(
            "median of {} runs: {:.1} {unit}; idle RSS median {:.1} MB; peak RSS max {worst_p99:.1} MB",
            figures.len(),
            median(&mut headlines),
            median(&mut p50s)
        );
    } else {
        println!(
            "median of {} runs: {:.3} {unit}; latency p50 {:.3} ms, p99 median {:.3} ms, p99 worst {worst_p99:.3} ms",
            figures.len(),
            median(&mut headlines),
            median(&mut p50s),
            median(&mut p99s)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = if options.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.client_threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_scenario(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench failed: {message}");
            ExitCode::FAILURE
        }
    }
}
