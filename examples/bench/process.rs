//! Scenarios that look at the server process itself: its memory (`rss`) and its start-up time
//! (`startup`, which launches and stops the server).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpStream;

use super::{Connection, Options, RunFigures, build_request, loopback_endpoint};

pub fn read_rss(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("pid {pid}: {error}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kilobytes| kilobytes.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

pub async fn startup(options: &Options, run: usize) -> Result<RunFigures, String> {
    let command_line = options
        .server_cmd
        .as_deref()
        .ok_or("startup needs --server-cmd \"tern serve …\"")?;
    let mut words = command_line.split_whitespace();
    let program = words.next().ok_or("empty --server-cmd")?;
    let session = loopback_endpoint(&options.session_url)?;
    if TcpStream::connect(session.address).await.is_ok() {
        return Err(format!(
            "{} is already in use; stop the other server first",
            session.address
        ));
    }
    let started = Instant::now();
    let child = std::process::Command::new(program)
        .args(words)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    let mut server = ChildGuard(child);
    let pid = server.0.id();
    let ready_after = loop {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("server not ready within 30 s".to_owned());
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            return Err(format!("server exited: {status}"));
        }
        if let Ok(mut connection) = Connection::open(session.address).await {
            let request = build_request(
                "GET",
                &session,
                &session.path_and_query,
                &options.authorization,
                None,
                Bytes::new(),
            )?;
            if let Ok((200, _)) = connection.exchange(request).await {
                break started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_kb, peak_kb) = read_rss(pid)?;
    server.terminate().await;
    let ready_ms = ready_after.as_secs_f64() * 1e3;
    println!(
        "  startup run {run}: ready after {ready_ms:.1} ms; idle RSS {:.1} MB (peak {:.1} MB)",
        rss_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    Ok(RunFigures {
        headline: ready_ms,
        headline_unit: "ms to ready",
        p50: rss_kb as f64 / 1024.0,
        p99: peak_kb as f64 / 1024.0,
    })
}

/// The server process `startup` started; stopped with SIGTERM (clean shutdown, as an operator
/// would), killed if it does not exit in time or when the bench fails half-way.
struct ChildGuard(std::process::Child);

impl ChildGuard {
    async fn terminate(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..1000 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
