//! Password guessing (issue 13, defect 4): throttled per account as well as per client
//! address, without locking the real user out, and with a bound on concurrent argon2
//! verifications. Client addresses are distinct loopback addresses (127.0.0.x: Linux routes
//! all of 127/8 to lo); the credential cache is off so every login really is verified.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::TestServer;

fn loopback(third: u8, fourth: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, third, fourth))
}

fn basic(email: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    format!("Basic {encoded}")
}

/// An HTTP client whose connections come from `address`.
fn client_from(address: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// GET of the session resource with Basic credentials: (status, Retry-After, elapsed).
async fn login(
    server: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> (u16, Option<u64>, Duration) {
    let started = Instant::now();
    let response = client
        .get(server.session_url())
        .header("authorization", basic(email, password))
        .send()
        .await
        .expect("session request");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    (response.status().as_u16(), retry_after, started.elapsed())
}

/// The process's resident set size in bytes (the server runs in this process).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_one_account_from_ten_addresses_is_throttled_per_account() {
    let server = TestServer::start_with(|config| {
        config.auth.credential_cache_seconds = 0;
        config.auth.failed_login_account_burst = 5;
        config.auth.failed_login_account_refill_seconds = 60;
        config.auth.failed_login_max_delay_seconds = 1;
    })
    .await;
    let alice = server.alice().clone();
    // 100 wrong passwords for alice, 10 from each of 10 addresses (each under the address
    // burst of 10): the addresses guess in parallel, each one after the other.
    let guessers: Vec<_> = (11..=20u8)
        .map(|fourth| {
            let client = client_from(loopback(0, fourth));
            let session_url = server.session_url();
            let email = alice.email.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for guess in 0..10 {
                    let started = Instant::now();
                    let response = client
                        .get(&session_url)
                        .header(
                            "authorization",
                            basic(&email, &format!("guess-{fourth}-{guess}")),
                        )
                        .send()
                        .await
                        .expect("session request");
                    let retry_after = response.headers().get("retry-after").is_some();
                    answers.push((response.status().as_u16(), retry_after, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut verified = 0;
    let mut refused = 0;
    for guesser in guessers {
        for (status, retry_after, _) in guesser.await.expect("guesser") {
            match status {
                401 => verified += 1,
                429 => {
                    assert!(retry_after, "a 429 says when to retry (Retry-After)");
                    refused += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    eprintln!("100 guesses from 10 addresses: {verified} verified (401), {refused} refused (429)");
    // One free try per fresh address plus the account's burst of 5 (and at most one refill).
    assert!(
        verified <= 16,
        "guessing must be limited per account: {verified} of 100 guesses were verified"
    );
    // The real user, from an address that never failed, still logs in at once.
    let (status, _, elapsed) = login(
        &server,
        &client_from(loopback(0, 50)),
        &alice.email,
        &alice.password,
    )
    .await;
    eprintln!("real user during the attack: {status} in {elapsed:?}");
    assert_eq!(status, 200, "the real user is not locked out");
    assert!(elapsed < Duration::from_secs(2), "promptly: {elapsed:?}");
    // A guesser's address is still refused for this account, without verification.
    let (status, retry_after, _) = login(
        &server,
        &client_from(loopback(0, 11)),
        &alice.email,
        "one-more-guess",
    )
    .await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|seconds| seconds >= 1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_password_behind_a_throttled_shared_address_still_logs_in() {
    let server = TestServer::start_with(|config| {
        config.auth.credential_cache_seconds = 0;
        config.auth.failed_login_burst = 3;
        config.auth.failed_login_refill_seconds = 2;
        config.auth.failed_login_max_delay_seconds = 5;
    })
    .await;
    let alice = server.alice().clone();
    let nat = client_from(loopback(0, 60));
    // Someone behind the NAT guesses other accounts until the address's burst is gone.
    for name in ["mallory", "trent", "oscar"] {
        let (status, _, _) = login(&server, &nat, &format!("{name}@example.test"), "guess").await;
        assert_eq!(status, 401);
    }
    // Alice, behind the same address, is slowed down (one refill at most), not refused.
    let (status, _, elapsed) = login(&server, &nat, &alice.email, &alice.password).await;
    eprintln!("correct password from a throttled address: {status} in {elapsed:?}");
    assert_eq!(
        status, 200,
        "a correct password from a shared address gets in"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "within a bound: {elapsed:?}"
    );
    // Guessers there stay throttled: concurrent guesses queue one refill apart, and past the
    // 5 s bound they are refused with Retry-After.
    let guesses: Vec<_> = (0..6)
        .map(|index| {
            let nat = nat.clone();
            let url = server.session_url();
            tokio::spawn(async move {
                let response = nat
                    .get(url)
                    .header(
                        "authorization",
                        basic("mallory@example.test", &format!("g{index}")),
                    )
                    .send()
                    .await
                    .expect("session request");
                (
                    response.status().as_u16(),
                    response.headers().contains_key("retry-after"),
                )
            })
        })
        .collect();
    let mut refused = 0;
    for guess in guesses {
        let (status, retry_after) = guess.await.expect("guess");
        if status == 429 {
            assert!(retry_after);
            refused += 1;
        } else {
            assert_eq!(status, 401);
        }
    }
    assert!(
        refused >= 2,
        "guessing faster than one try per refill is refused: {refused}"
    );
    // Alice logged in from here before: the guessers' slow lane does not concern her.
    let (status, _, elapsed) = login(&server, &nat, &alice.email, &alice.password).await;
    assert_eq!(status, 200);
    assert!(
        elapsed < Duration::from_secs(1),
        "known device, at once: {elapsed:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_never_verify_more_than_the_configured_bound() {
    const BOUND: usize = 2;
    const LOGINS: u8 = 40;
    let server = TestServer::start_with(|config| {
        config.auth.credential_cache_seconds = 0;
        config.auth.max_concurrent_password_checks = BOUND;
    })
    .await;
    let alice = server.alice().clone();
    let before = rss_bytes();
    let started = Instant::now();
    // Each from its own address, so no throttle holds any back: all 40 want argon2 at once.
    let logins: Vec<_> = (1..=LOGINS)
        .map(|fourth| {
            let client = client_from(loopback(1, fourth));
            let url = server.session_url();
            let email = alice.email.clone();
            tokio::spawn(async move {
                client
                    .get(url)
                    .header("authorization", basic(&email, "wrong"))
                    .send()
                    .await
                    .expect("session request")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.expect("login"), 401);
    }
    let after = rss_bytes();
    let peak = server.running().directory().verifier().peak_concurrent();
    eprintln!(
        "{LOGINS} concurrent wrong logins in {:?}: at most {peak} argon2 verifications at once, \
         RSS {} MB -> {} MB",
        started.elapsed(),
        before / 1_000_000,
        after / 1_000_000
    );
    assert!(
        (1..=BOUND).contains(&peak),
        "{peak} verifications ran at once; the bound is {BOUND}"
    );
    // Each verification needs 19 MiB: far less than 40 of them may ever be resident.
    assert!(
        after.saturating_sub(before) < 150_000_000,
        "RSS grew from {before} to {after} bytes"
    );
    server.shutdown().await;
}

/// One SMTP command and its (last) reply line, on a client socket from a chosen address.
async fn smtp_command(
    stream: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    line: Option<&str>,
) -> String {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    if let Some(line) = line {
        stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
    }
    loop {
        let mut reply = String::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_line(&mut reply))
            .await
            .expect("a reply in time")
            .expect("read");
        assert!(read > 0, "connection closed");
        // Multi-line replies continue with "NNN-".
        if reply.as_bytes().get(3) != Some(&b'-') {
            return reply.trim_end().to_owned();
        }
    }
}

async fn smtp_from(
    from: IpAddr,
    server: std::net::SocketAddr,
) -> tokio::io::BufReader<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::new(from, 0))
        .expect("bind to the client address");
    let stream = socket.connect(server).await.expect("connect");
    let mut stream = tokio::io::BufReader::new(stream);
    let greeting = smtp_command(&mut stream, None).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let ehlo = smtp_command(&mut stream, Some("EHLO client.example")).await;
    assert!(ehlo.starts_with("250"), "{ehlo}");
    stream
}

fn auth_plain(email: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{email}\0{password}"));
    format!("AUTH PLAIN {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_shares_the_login_throttle() {
    let server = TestServer::start_with(|config| {
        config.auth.credential_cache_seconds = 0;
        config.auth.failed_login_account_burst = 2;
        config.auth.failed_login_account_refill_seconds = 60;
        config.auth.failed_login_max_delay_seconds = 1;
        config.smtp.listen = None;
        config.smtp.submission = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let alice = server.alice().clone();
    let submission = server
        .running()
        .smtp
        .submission
        .expect("submission listener");
    // Two guesses over HTTP use up alice's account burst of 2 ...
    let guesser = loopback(0, 70);
    let http = client_from(guesser);
    for guess in 0..2 {
        let (status, _, _) = login(&server, &http, &alice.email, &format!("g{guess}")).await;
        assert_eq!(status, 401);
    }
    // ... so the same guesser is refused over SMTP AUTH too (RFC 4954 §6: 454 4.7.0) ...
    let mut smtp = smtp_from(guesser, submission).await;
    let refused = smtp_command(&mut smtp, Some(&auth_plain(&alice.email, "g2"))).await;
    assert!(refused.starts_with("454 4.7.0"), "{refused}");
    // ... while alice's own mail client, from an address that never failed, gets in.
    let mut smtp = smtp_from(loopback(0, 71), submission).await;
    let accepted = smtp_command(&mut smtp, Some(&auth_plain(&alice.email, &alice.password))).await;
    assert!(accepted.starts_with("235"), "{accepted}");
    server.shutdown().await;
}
