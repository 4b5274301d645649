//! Push scenarios of the bench tool (RFC 8887 WebSocket, RFC 8620 §7.3 EventSource), against
//! any JMAP server that advertises `urn:ietf:params:jmap:websocket` and has Mailbox/set (the
//! commits are Mailbox creates and destroys, one per round):
//! - `ws-echo`: Core/echo over ONE WebSocket, `--requests N` sequential requests.
//! - `push-latency`: `--connections C` WebSockets (default 32; the figure uses 1000)
//!   with push enabled on the account; `--requests N` rounds of one commit each. The headline
//!   clock starts at the commit instant: when the server answers with a W3C `Server-Timing`
//!   header with a `commit` metric (Tern: the time from reading the request until its push
//!   hub saw the commit, which the store tells it before the commit returns), the commit
//!   instant is taken as *send instant + dur*. That leaves out the request's own trip (≈ 0.05
//!   ms on loopback, which moves the estimate earlier: conservative) and includes the wake-up
//!   of the hub's watcher (idle between rounds here). Without the metric it falls back to the
//!   send instant. The clock used is printed, and so is the strict upper bound from sending
//!   the request (request + fsync'd commit + push), the clock from receiving the response
//!   (with 1,000 sockets it often comes after the pushes, so it reads 0 for many), and the
//!   CPU time per socket and round of this client and (with `--server-pid`) of the server,
//!   since both share the machine.
//! - `push-idle`: `--iterations N` idle WebSockets with push enabled, then the server's RSS
//!   (`--server-pid`); also checks that a commit still reaches every socket.
//! - `eventsource-latency`: one EventSource stream; `--requests N` commits; latency from the
//!   commit instant (as in push-latency) to the `state` event, and from sending the request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{
    Connection, Options, RunFigures, Samples, Target, build_request, loopback_endpoint, read_rss,
};

pub(crate) type Socket = WebSocketStream<TcpStream>;

/// A per-process nonce for Mailbox names.
pub(crate) fn rand_nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// The push URLs of the session.
pub(crate) struct PushUrls {
    pub(crate) websocket: String,
    event_source: String,
}

pub(crate) async fn push_urls(options: &Options) -> Result<PushUrls, String> {
    let endpoint = loopback_endpoint(&options.session_url)?;
    let mut connection = Connection::open(endpoint.address).await?;
    let request = build_request(
        "GET",
        &endpoint,
        &endpoint.path_and_query,
        &options.authorization,
        None,
        Bytes::new(),
    )?;
    let (_, body) = connection.exchange(request).await?;
    let session: Value = serde_json::from_slice(&body).map_err(|error| error.to_string())?;
    let websocket = session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"]
        .as_str()
        .ok_or("the session has no urn:ietf:params:jmap:websocket url")?
        .to_owned();
    let event_source = session["eventSourceUrl"]
        .as_str()
        .ok_or("the session has no eventSourceUrl")?
        .to_owned();
    Ok(PushUrls {
        websocket,
        event_source,
    })
}

pub(crate) async fn open_socket(url: &str, authorization: &str) -> Result<Socket, String> {
    let mut request = url
        .into_client_request()
        .map_err(|error| format!("{url}: {error}"))?;
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        authorization.parse().map_err(|_| "bad authorization")?,
    );
    headers.insert("sec-websocket-protocol", "jmap".parse().map_err(|_| "bad")?);
    let host = request.uri().host().ok_or("no host")?.to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|error| format!("WebSocket handshake: {error}"))?;
    Ok(socket)
}

async fn next_text(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).map_err(|error| error.to_string());
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("socket closed".to_owned()),
        }
    }
}

/// Enables push and waits until the server processed it (an echo after it is answered).
async fn enable_push(socket: &mut Socket) -> Result<(), String> {
    socket
        .send(Message::text(
            json!({"@type": "WebSocketPushEnable"}).to_string(),
        ))
        .await
        .map_err(|error| error.to_string())?;
    socket
        .send(Message::text(echo_request("sync").to_string()))
        .await
        .map_err(|error| error.to_string())?;
    loop {
        let message = next_text(socket).await?;
        if message["requestId"] == "sync" {
            return Ok(());
        }
    }
}

fn echo_request(id: &str) -> Value {
    json!({
        "@type": "Request",
        "id": id,
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {"hello": true, "high": 5}, "b3ff"]],
    })
}

pub async fn ws_echo(options: &Options) -> Result<RunFigures, String> {
    let urls = push_urls(options).await?;
    let mut socket = open_socket(&urls.websocket, &options.authorization).await?;
    let mut samples = Samples::default();
    let started = Instant::now();
    for index in 0..options.warmup + options.requests {
        let id = index.to_string();
        let sent = Instant::now();
        socket
            .send(Message::text(echo_request(&id).to_string()))
            .await
            .map_err(|error| error.to_string())?;
        let answer = next_text(&mut socket).await?;
        if answer["requestId"] != id.as_str() {
            return Err(format!("unexpected answer {answer}"));
        }
        if index >= options.warmup {
            samples.push(sent.elapsed());
        }
    }
    let elapsed = started.elapsed();
    let summary = samples.summary();
    println!("ws-echo: {summary}");
    Ok(RunFigures {
        headline: (options.warmup + options.requests) as f64 / elapsed.as_secs_f64(),
        headline_unit: "requests/s",
        p50: summary.p50,
        p99: summary.p99,
    })
}

static NAME_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// When one commit's request went out and its answer came back.
struct CommitTiming {
    sent: Instant,
    answered: Instant,
    /// `Server-Timing: …, commit;dur=…`: the server's time from reading the request to the
    /// commit being done.
    server_duration: Option<Duration>,
}

impl CommitTiming {
    /// The commit instant as well as the client can place it: `sent + dur` (see the module
    /// docs for how far off that can be), else `sent`; never after the response arrived.
    fn commit_instant(&self) -> Instant {
        self.server_duration.map_or(self.sent, |duration| {
            (self.sent + duration).min(self.answered)
        })
    }

    fn clock_name(&self) -> &'static str {
        if self.server_duration.is_some() {
            "commit instant = request sent + Server-Timing commit dur"
        } else {
            "request sent (the server sent no Server-Timing commit metric)"
        }
    }
}

/// The `dur` (milliseconds) of the `commit` metric of a W3C Server-Timing header.
fn server_timing_commit(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|metric| {
            let mut parts = metric.split(';').map(str::trim);
            if parts.next()? != "commit" {
                return None;
            }
            parts.find_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("dur") {
                    return None;
                }
                let millis: f64 = value.trim().trim_matches('"').parse().ok()?;
                (millis.is_finite() && millis >= 0.0)
                    .then(|| Duration::from_secs_f64(millis / 1000.0))
            })
        })
}

/// One commit: creates the round's Mailbox, or destroys the one created before.
struct Committer {
    connection: Connection,
    target: Target,
    created: Option<String>,
    round: u64,
}

impl Committer {
    async fn new(target: &Target) -> Result<Committer, String> {
        Ok(Committer {
            connection: Connection::open(target.api.address).await?,
            target: target.clone(),
            created: None,
            round: 0,
        })
    }

    /// Destroys the Mailbox a run may leave behind.
    async fn finish(mut self) -> Result<(), String> {
        if self.created.is_some() {
            self.commit().await?;
        }
        Ok(())
    }

    /// Returns when the request went out and its response arrived.
    async fn commit(&mut self) -> Result<CommitTiming, String> {
        // Unique across runs and processes: a name taken by a leftover would not commit.
        self.round = NAME_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let arguments = match self.created.take() {
            Some(id) => json!({"accountId": self.target.account_id, "destroy": [id]}),
            None => json!({
                "accountId": self.target.account_id,
                "create": {"m": {"name": format!(
                    "bench-push-{}-{}-{}",
                    std::process::id(),
                    self.round,
                    Instant::now().elapsed().as_nanos() ^ u128::from(rand_nonce())
                )}},
            }),
        };
        let body = json!({
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [["Mailbox/set", arguments, "c0"]],
        });
        let request = build_request(
            "POST",
            &self.target.api,
            &self.target.api.path_and_query,
            &self.target.authorization,
            Some("application/json"),
            Bytes::from(body.to_string()),
        )?;
        let sent = Instant::now();
        let (status, headers, body) = self.connection.exchange_with_headers(request).await?;
        let answered = Instant::now();
        let response: Value = serde_json::from_slice(&body).map_err(|error| error.to_string())?;
        let result = &response["methodResponses"][0][1];
        if status != 200 || response["methodResponses"][0][0] != "Mailbox/set" {
            return Err(format!("Mailbox/set failed: {response}"));
        }
        if let Some(id) = result["created"]["m"]["id"].as_str() {
            self.created = Some(id.to_owned());
        }
        Ok(CommitTiming {
            sent,
            answered,
            server_duration: server_timing_commit(&headers),
        })
    }
}

/// What marks a StateChange in the raw bytes of a server frame (unmasked, not compressed).
const STATE_CHANGE_MARK: &[u8] = b"\"StateChange\"";

/// Opens `count` sockets with push enabled; each reports the instant of every StateChange.
async fn listeners(
    url: &str,
    authorization: &str,
    count: usize,
) -> Result<
    (
        mpsc::UnboundedReceiver<(usize, Instant)>,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    String,
> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(count);
    let opened = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ready = Vec::with_capacity(count);
    for index in 0..count {
        let url = url.to_owned();
        let authorization = authorization.to_owned();
        let sender = sender.clone();
        let opened = Arc::clone(&opened);
        let (ready_sender, ready_receiver) = tokio::sync::oneshot::channel();
        ready.push(ready_receiver);
        tasks.push(tokio::spawn(async move {
            let permit = opened.acquire_owned().await;
            let socket = async {
                let mut socket = open_socket(&url, &authorization).await?;
                enable_push(&mut socket).await?;
                Ok::<Socket, String>(socket)
            }
            .await;
            drop(permit);
            let socket = match socket {
                Ok(socket) => {
                    let _ = ready_sender.send(Ok(()));
                    socket
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error));
                    return;
                }
            };
            // Once push is on, the socket only receives: read it raw, one `read` per wake-up,
            // timestamp as the bytes arrive and look for the type name instead of decoding the
            // frame and parsing JSON. This keeps the client's own cost per socket small (it
            // shares the cores with the server); pings go unanswered, which the server allows
            // until its idle timeout (90 s by default, longer than a run).
            let stream = socket.into_inner();
            let mut buffer = vec![0u8; 4096];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut buffer) {
                    Ok(0) => return,
                    Ok(read) => {
                        let at = Instant::now();
                        if buffer[..read]
                            .windows(STATE_CHANGE_MARK.len())
                            .any(|window| window == STATE_CHANGE_MARK)
                            && sender.send((index, at)).is_err()
                        {
                            return;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
            }
        }));
    }
    for ready in ready {
        ready
            .await
            .map_err(|_| "a listener task ended".to_owned())??;
    }
    Ok((receiver, tasks))
}

pub async fn push_latency(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let urls = push_urls(options).await?;
    let count = options.connections;
    let (mut receipts, tasks) = listeners(&urls.websocket, &options.authorization, count).await?;
    let mut committer = Committer::new(target).await?;
    let mut samples = Samples::default();
    let mut from_sent = Samples::default();
    let mut from_response = Samples::default();
    let mut round_p100 = Samples::default();
    let mut commit_trips = Samples::default();
    let mut server_durations = Samples::default();
    let mut clock = "";
    let mut with_commit_metric = 0usize;
    let mut cpu_before = (0, 0);
    for round in 0..options.warmup + options.requests {
        if round == options.warmup {
            cpu_before = (
                cpu_ticks(None),
                options.server_pid.map_or(0, |pid| cpu_ticks(Some(pid))),
            );
        }
        let timing = committer.commit().await?;
        let committed = timing.commit_instant();
        let mut seen = vec![false; count];
        let mut remaining = count;
        let mut last = committed;
        while remaining > 0 {
            let (index, at) = tokio::time::timeout(Duration::from_secs(10), receipts.recv())
                .await
                .map_err(|_| format!("round {round}: {remaining} sockets got no StateChange"))?
                .ok_or("listeners ended")?;
            if !seen[index] {
                seen[index] = true;
                remaining -= 1;
                last = last.max(at);
                if round >= options.warmup {
                    samples.push(at.saturating_duration_since(committed));
                    from_sent.push(at.saturating_duration_since(timing.sent));
                    from_response.push(at.saturating_duration_since(timing.answered));
                }
            }
        }
        if round >= options.warmup {
            round_p100.push(last.saturating_duration_since(committed));
            commit_trips.push(timing.answered.saturating_duration_since(timing.sent));
            if let Some(duration) = timing.server_duration {
                server_durations.push(duration);
                with_commit_metric += 1;
            }
            clock = timing.clock_name();
        }
    }
    let client_ticks = cpu_ticks(None) - cpu_before.0;
    let server_ticks = options
        .server_pid
        .map(|pid| cpu_ticks(Some(pid)) - cpu_before.1);
    committer.finish().await?;
    for task in tasks {
        task.abort();
    }
    if with_commit_metric as u64 != options.requests && with_commit_metric > 0 {
        clock = "MIXED: sent + Server-Timing commit dur where the server gave it, else sent";
    }
    let summary = samples.summary();
    let rounds = round_p100.summary();
    // CPU microseconds per socket and round (clock ticks are 10 ms: meaningful over many rounds).
    let per_socket = |ticks: u64| {
        ticks as f64 * 10_000.0 / (options.requests.max(1) as f64 * count.max(1) as f64)
    };
    println!(
        "push-latency ({count} sockets; clock: {clock}): from the commit, per socket {summary}; \
         last socket per round p50={:.3}ms; from sending the request {}; from the commit's \
         response {}; request + commit round trip {}; server's Server-Timing commit dur {}; \
         CPU per socket and round: client {:.1} us, server {}",
        rounds.p50,
        from_sent.summary(),
        from_response.summary(),
        commit_trips.summary(),
        server_durations.summary(),
        per_socket(client_ticks),
        server_ticks.map_or("(no --server-pid)".to_owned(), |ticks| format!(
            "{:.1} us",
            per_socket(ticks)
        )),
    );
    Ok(RunFigures {
        headline: rounds.p50,
        headline_unit: "ms from the commit until the last socket (p50 of rounds)",
        p50: summary.p50,
        p99: summary.p99,
    })
}

/// User + system CPU clock ticks (1/100 s) of this process (`None`) or of `pid`; 0 if
/// unreadable.
fn cpu_ticks(pid: Option<u32>) -> u64 {
    let path = pid.map_or("/proc/self/stat".to_owned(), |pid| {
        format!("/proc/{pid}/stat")
    });
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

pub async fn push_idle(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let pid = options.server_pid.ok_or("push-idle needs --server-pid")?;
    let urls = push_urls(options).await?;
    let count = usize::try_from(options.iterations).unwrap_or(usize::MAX);
    let (before_kb, _) = read_rss(pid)?;
    let started = Instant::now();
    let (mut receipts, tasks) = listeners(&urls.websocket, &options.authorization, count).await?;
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_kb, peak_kb) = read_rss(pid)?;
    // Still alive: one commit reaches every socket.
    let mut committer = Committer::new(target).await?;
    let sent = Instant::now();
    committer.commit().await?;
    let mut samples = Samples::default();
    for _ in 0..count {
        let (_, at) = tokio::time::timeout(Duration::from_secs(30), receipts.recv())
            .await
            .map_err(|_| "not every idle socket got the StateChange".to_owned())?
            .ok_or("listeners ended")?;
        samples.push(at.saturating_duration_since(sent));
    }
    committer.commit().await?;
    for task in tasks {
        task.abort();
    }
    let summary = samples.summary();
    println!(
        "push-idle: {count} sockets opened in {:.1} s; server RSS {:.1} MB (before {:.1} MB, peak {:.1} MB); one commit to all: {summary}",
        opened.as_secs_f64(),
        rss_kb as f64 / 1024.0,
        before_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    Ok(RunFigures {
        headline: rss_kb as f64 / 1024.0,
        headline_unit: "MB server RSS",
        p50: summary.p50,
        p99: summary.p99,
    })
}

pub async fn eventsource_latency(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let urls = push_urls(options).await?;
    let url = urls
        .event_source
        .replace("{types}", "*")
        .replace("{closeafter}", "no")
        .replace("{ping}", "0");
    let endpoint = loopback_endpoint(&url)?;
    let stream = TcpStream::connect(endpoint.address)
        .await
        .map_err(|error| error.to_string())?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::get(endpoint.path_and_query.as_str())
        .header("host", &endpoint.host_header)
        .header("authorization", &options.authorization)
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    if response.status() != 200 {
        return Err(format!("EventSource answered HTTP {}", response.status()));
    }
    let mut body = response.into_body();
    let (events, mut receipts) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref()
                && data.windows(12).any(|window| window == b"event: state")
                && events.send(Instant::now()).is_err()
            {
                return;
            }
        }
    });
    let mut committer = Committer::new(target).await?;
    let mut samples = Samples::default();
    let mut from_sent = Samples::default();
    let mut clock = "";
    for round in 0..options.warmup + options.requests {
        let timing = committer.commit().await?;
        let at = tokio::time::timeout(Duration::from_secs(10), receipts.recv())
            .await
            .map_err(|_| format!("round {round}: no state event"))?
            .ok_or("the stream ended")?;
        if round >= options.warmup {
            samples.push(at.saturating_duration_since(timing.commit_instant()));
            from_sent.push(at.saturating_duration_since(timing.sent));
            clock = timing.clock_name();
        }
    }
    committer.finish().await?;
    reader.abort();
    let summary = samples.summary();
    println!(
        "eventsource-latency (clock: {clock}): from the commit {summary}; from sending the request {}",
        from_sent.summary()
    );
    Ok(RunFigures {
        headline: summary.p50,
        headline_unit: "ms p50",
        p50: summary.p50,
        p99: summary.p99,
    })
}
