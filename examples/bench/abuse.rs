//! `abuse`: the longer form of the abuse suite (tests/abuse/ is the bounded one). Runs each
//! attack of issue 13 against any JMAP server (and its SMTP listener with `--smtp ADDR`) on
//! loopback for `--duration` seconds, while a normal client keeps probing, and reports:
//! - the probe latency of a **new** connection's Core/echo (p50/p99, failures), every 50 ms,
//!   from 127.0.0.1 (the attackers use other loopback addresses, `--attack-addresses`);
//! - with `--smtp`, the time from connect to `250` for a one-recipient probe message to
//!   `--user`, every 200 ms;
//! - with `--server-pid`, the server's RSS before, its peak during (sampled every 20 ms) and
//!   after (2 s after the attack stopped);
//! - what the attackers got: answers by status, refusals, and the bytes the server sent.
//!
//! `--attack NAME` runs one attack (default: all, in this order):
//! - `idle-http`: `--connections` TCP connections to the API port that never send a byte;
//! - `slowloris-http`: connections that send request headers one byte a second;
//! - `heavy-get`: imports a 10,000-part and a 5,000-deep message, then 4 clients repeat one
//!   request of 64 × `Email/get {properties: null, fetchAllBodyValues: true}`;
//! - `login-guess`: 40 concurrent clients with wrong passwords for `--user`;
//! - `ws-flood`: `--connections`/10 WebSockets each sending Core/echo as fast as answered, and
//!   100 frame-open-and-close connections a second;
//! - `idle-smtp` and `slowloris-smtp` (with `--smtp`): idle sessions after the greeting, and
//!   sessions sending a command one byte every 2 s, from `--attack-addresses` addresses.
//!
//! Every attack is bounded in connections (`--connections`; BENCHMARKS uses 1,100, more
//! than the usual soft limit of 1,024 descriptors: run the bench under `ulimit -n 4096`) and
//! in time (`--duration`).

mod attacks;
mod messages;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpSocket, TcpStream};

use super::{Connection, Options, RunFigures, Samples, Target, build_request, read_rss};

/// The attacks in the order `--attack all` runs them.
pub const ATTACKS: &[&str] = &[
    "idle-http",
    "slowloris-http",
    "heavy-get",
    "login-guess",
    "ws-flood",
    "idle-smtp",
    "slowloris-smtp",
];

/// What attackers of one kind observed; shared by their tasks.
#[derive(Default)]
pub struct AttackTally {
    pub connections: AtomicU64,
    pub connect_failures: AtomicU64,
    pub answers_ok: AtomicU64,
    pub answers_refused: AtomicU64,
    pub closed_by_server: AtomicU64,
    pub bytes_received: AtomicU64,
}

impl AttackTally {
    fn describe(&self) -> String {
        format!(
            "attackers: {} connections ({} failed to connect), {} answers ok, {} refused, {} \
             closed by the server, {:.1} MB received",
            self.connections.load(Ordering::Relaxed),
            self.connect_failures.load(Ordering::Relaxed),
            self.answers_ok.load(Ordering::Relaxed),
            self.answers_refused.load(Ordering::Relaxed),
            self.closed_by_server.load(Ordering::Relaxed),
            self.bytes_received.load(Ordering::Relaxed) as f64 / 1e6
        )
    }
}

/// Everything an attack needs.
pub struct AttackContext {
    pub target: Target,
    pub options_user: String,
    pub websocket_url: Option<String>,
    pub smtp: Option<SocketAddr>,
    pub connections: usize,
    pub addresses: u8,
    pub stop: Arc<AtomicBool>,
    pub tally: Arc<AttackTally>,
}

impl AttackContext {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The `index`-th attacker's source address: 127.0.1.1, 127.0.1.2, … (never the probe's
    /// 127.0.0.1), so per-address limits see `--attack-addresses` clients.
    pub fn source(&self, index: usize) -> IpAddr {
        let host = (index % usize::from(self.addresses.max(1))) as u8;
        IpAddr::V4(Ipv4Addr::new(127, 0, 1, host + 1))
    }
}

/// A TCP connection from `source` (a loopback address) to `to`.
pub async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub async fn abuse(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let chosen: Vec<&str> = match options.attack.as_deref() {
        None | Some("all") => ATTACKS.to_vec(),
        Some(name) if ATTACKS.contains(&name) => vec![name],
        Some(other) => {
            return Err(format!(
                "--attack: one of {} or all, not {other}",
                ATTACKS.join(", ")
            ));
        }
    };
    let websocket_url = super::push::push_urls(options)
        .await
        .ok()
        .map(|urls| urls.websocket);
    let mut worst_p99 = 0.0f64;
    let mut all_p50 = Vec::new();
    for name in chosen {
        if name.ends_with("-smtp") && options.smtp.is_none() {
            println!("  {name}: skipped (give --smtp ADDR)");
            continue;
        }
        let context = Arc::new(AttackContext {
            target: target.clone(),
            options_user: options.user.clone().unwrap_or_default(),
            websocket_url: websocket_url.clone(),
            smtp: options.smtp,
            connections: options.connections,
            addresses: options.attack_addresses,
            stop: Arc::new(AtomicBool::new(false)),
            tally: Arc::new(AttackTally::default()),
        });
        let figures = run_one(name, options, &context).await?;
        worst_p99 = worst_p99.max(figures.p99);
        all_p50.push(figures.p50);
    }
    Ok(RunFigures {
        headline: worst_p99,
        headline_unit: "ms worst probe p99 over the attacks",
        p50: super::median(&mut all_p50),
        p99: worst_p99,
    })
}

async fn run_one(
    name: &str,
    options: &Options,
    context: &Arc<AttackContext>,
) -> Result<RunFigures, String> {
    let rss_before = options.server_pid.map(read_rss).transpose()?;
    let attack = tokio::spawn(attacks::run(name.to_owned(), Arc::clone(context)));
    // Let the attack take hold before probing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let until = Instant::now() + options.duration;
    let memory = tokio::spawn(sample_peak_rss(options.server_pid, until));
    let smtp_probe = match (options.smtp, &options.user) {
        (Some(smtp), Some(user)) => Some(tokio::spawn(probe_smtp(smtp, user.clone(), until))),
        _ => None,
    };
    let echo = probe_echo(&context.target, until).await;
    context.stop.store(true, Ordering::Relaxed);
    let peak_kb = memory.await.map_err(|error| error.to_string())?;
    let smtp = match smtp_probe {
        Some(task) => Some(task.await.map_err(|error| error.to_string())?),
        None => None,
    };
    match tokio::time::timeout(Duration::from_secs(10), attack).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(message))) => println!("  {name}: the attack itself failed: {message}"),
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => println!("  {name}: attackers still running 10 s after the stop"),
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = options.server_pid.map(read_rss).transpose()?;
    println!("  {name}:");
    println!(
        "    probe Core/echo (new connection each): {} ({} failed: {})",
        echo.latencies,
        echo.failures,
        echo.first_failure.as_deref().unwrap_or("-")
    );
    if let Some(smtp) = &smtp {
        println!(
            "    probe SMTP message to 250: {} ({} failed: {})",
            smtp.latencies,
            smtp.failures,
            smtp.first_failure.as_deref().unwrap_or("-")
        );
    }
    match (rss_before, peak_kb, rss_after) {
        (Some((before, _)), Some(peak), Some((after, _))) => println!(
            "    server RSS: {:.1} MB before, {:.1} MB peak, {:.1} MB after",
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            after as f64 / 1024.0
        ),
        _ => println!("    server RSS: not measured (give --server-pid)"),
    }
    println!("    {}", context.tally.describe());
    Ok(RunFigures {
        headline: echo.latencies.p99,
        headline_unit: "ms probe p99",
        p50: echo.latencies.p50,
        p99: echo.latencies.p99,
    })
}

/// What a prober saw.
struct ProbeOutcome {
    latencies: super::Percentiles,
    failures: u64,
    first_failure: Option<String>,
}

fn outcome(samples: Samples, failures: Vec<String>) -> ProbeOutcome {
    ProbeOutcome {
        latencies: samples.summary(),
        failures: failures.len() as u64,
        first_failure: failures.into_iter().next(),
    }
}

/// A new connection and one Core/echo every 50 ms until `until`; a probe that takes more
/// than 5 s counts as a failure.
async fn probe_echo(target: &Target, until: Instant) -> ProbeOutcome {
    let mut samples = Samples::default();
    let mut failures = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let mut connection = Connection::open(target.api.address).await?;
            super::echo_once(&mut connection, target).await
        })
        .await;
        match attempt {
            Ok(Ok(())) => samples.push(started.elapsed()),
            Ok(Err(message)) => failures.push(message),
            Err(_) => failures.push("no answer within 5 s".to_owned()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outcome(samples, failures)
}

/// Connect, EHLO, one small message to `recipient`, `250`, QUIT: every 200 ms until `until`.
async fn probe_smtp(address: SocketAddr, recipient: String, until: Instant) -> ProbeOutcome {
    let mut samples = Samples::default();
    let mut failures = Vec::new();
    let mut number = 0u64;
    let nonce = super::push::rand_nonce();
    while Instant::now() < until {
        number += 1;
        let started = Instant::now();
        let message = format!(
            "MAIL FROM:<probe@remote.example>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n\
             From: probe@remote.example\r\nTo: {recipient}\r\nSubject: abuse probe {number}\r\n\
             Message-ID: <abuse-probe-{nonce:x}-{number}@remote.example>\r\n\r\nprobe\r\n.\r\n"
        );
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let mut session = super::smtp::Session::open(address).await?;
            session.write(message.as_bytes()).await?;
            for code in [250, 250, 354, 250] {
                session.reply(code).await?;
            }
            let _ = session.write(b"QUIT\r\n").await;
            Ok::<(), String>(())
        })
        .await;
        match attempt {
            Ok(Ok(())) => samples.push(started.elapsed()),
            Ok(Err(message)) => failures.push(message),
            Err(_) => failures.push("no 250 within 5 s".to_owned()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    outcome(samples, failures)
}

/// The server's peak VmRSS in KB, sampled every 20 ms until `until` (VmHWM cannot be reset
/// between attacks, so the peak is sampled).
async fn sample_peak_rss(pid: Option<u32>, until: Instant) -> Option<u64> {
    let pid = pid?;
    let mut peak = 0;
    while Instant::now() < until {
        if let Ok((rss, _)) = read_rss(pid) {
            peak = peak.max(rss);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(peak)
}

/// One API request with a raw JSON body; answers the status and the body's length.
pub async fn post_api(
    connection: &mut Connection,
    target: &Target,
    authorization: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let request = build_request(
        "POST",
        &target.api,
        &target.api.path_and_query,
        authorization,
        Some("application/json"),
        body,
    )?;
    connection.exchange(request).await
}
