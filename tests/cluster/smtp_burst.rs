//! An SMTP burst spread over the three nodes while the account's owner is killed: every
//! message answered `250` is delivered exactly once, through whichever node took over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::harness::{
    Call, Node, NodeOptions, api, claim_through, client, create_account, three_nodes, with_fdb,
};

/// The code of the next (last line of a) SMTP reply.
async fn reply(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
) -> Result<u16, std::io::Error> {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| std::io::Error::other("reply timeout"))??
            .ok_or_else(|| std::io::Error::other("closed"))?;
        if line.len() >= 4 && line.as_bytes()[3] == b' ' {
            return line[..3].parse().map_err(std::io::Error::other);
        }
    }
}

/// Sends one message; `Ok(true)` on `250` after the data, `Ok(false)` on a refusal (4xx/5xx).
async fn send(
    server: std::net::SocketAddr,
    rcpt: &str,
    subject: &str,
) -> Result<bool, std::io::Error> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server))
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if reply(&mut lines).await? != 220 {
        return Ok(false);
    }
    for (command, expected) in [
        ("EHLO burst.test\r\n".to_owned(), 250),
        ("MAIL FROM:<sender@burst.test>\r\n".to_owned(), 250),
        (format!("RCPT TO:<{rcpt}>\r\n"), 250),
        ("DATA\r\n".to_owned(), 354),
    ] {
        write.write_all(command.as_bytes()).await?;
        if reply(&mut lines).await? != expected {
            return Ok(false);
        }
    }
    let message = format!(
        "From: <sender@burst.test>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@burst.test>\r\n\r\n{}\r\n.\r\n",
        // 10 KB in 100 lines (SMTP lines stay under 1000 octets, RFC 5321 §4.5.3.1.6).
        vec!["x".repeat(98); 100].join("\r\n")
    );
    write.write_all(message.as_bytes()).await?;
    let accepted = reply(&mut lines).await? == 250;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(accepted)
}

/// Sends one message per subject over a single SMTP session; how many were answered `250`.
async fn send_in_one_session(
    server: std::net::SocketAddr,
    rcpt: &str,
    subjects: &[String],
) -> Result<usize, std::io::Error> {
    let stream = TcpStream::connect(server).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    assert_eq!(reply(&mut lines).await?, 220);
    write.write_all(b"EHLO paging.test\r\n").await?;
    assert_eq!(reply(&mut lines).await?, 250);
    let mut accepted = 0;
    for subject in subjects {
        for (command, expected) in [
            ("MAIL FROM:<sender@paging.test>\r\n".to_owned(), 250),
            (format!("RCPT TO:<{rcpt}>\r\n"), 250),
            ("DATA\r\n".to_owned(), 354),
        ] {
            write.write_all(command.as_bytes()).await?;
            assert_eq!(reply(&mut lines).await?, expected, "{command}");
        }
        let message = format!(
            "From: <sender@paging.test>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\
             Message-ID: <{subject}@paging.test>\r\n\r\nqueued\r\n.\r\n"
        );
        write.write_all(message.as_bytes()).await?;
        if reply(&mut lines).await? == 250 {
            accepted += 1;
        }
    }
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(accepted)
}

/// Subjects of the account's Emails, with how many Emails carry each.
async fn subjects(node: &str, email: &str, account: &str) -> HashMap<String, usize> {
    let calls = json!([
        ["Email/query", {"accountId": account, "limit": 10000}, "q"],
        ["Email/get", {"accountId": account, "properties": ["subject"],
            "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]
    ]);
    loop {
        if let Call::Ok(value) = api(&client(), node, email, calls.clone()).await {
            let mut seen = HashMap::new();
            if let Some(list) = value["methodResponses"][1][1]["list"].as_array() {
                for item in list {
                    *seen
                        .entry(item["subject"].as_str().unwrap_or_default().to_owned())
                        .or_insert(0) += 1;
                }
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn killing_the_owner_during_an_smtp_burst_loses_no_accepted_message() {
    with_fdb("smtp_burst_kill", |fdb| {
        let mut nodes = three_nodes(fdb);
        let email = "smtp@cluster.test";
        create_account(&nodes[0], email);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let account = rt.block_on(claim_through(&client(), &nodes[0], email));
        let servers: Vec<std::net::SocketAddr> = nodes.iter().map(|node| node.smtp).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for (sender, server) in servers.iter().copied().enumerate() {
            let stop = std::sync::Arc::clone(&stop);
            senders.push(rt.spawn(async move {
                let mut accepted = Vec::new();
                let mut sequence = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    sequence += 1;
                    let subject = format!("s{sender}-{sequence}");
                    if let Ok(true) = send(server, "smtp@cluster.test", &subject).await {
                        accepted.push(subject);
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                accepted
            }));
        }
        std::thread::sleep(Duration::from_millis(2000));
        nodes[0].kill();
        std::thread::sleep(Duration::from_millis(4000));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let accepted: Vec<String> = senders
            .into_iter()
            .flat_map(|sender| rt.block_on(sender).unwrap())
            .collect();
        assert!(
            accepted.len() > 10,
            "the burst sent too little: {}",
            accepted.len()
        );
        // Everything accepted is delivered exactly once, by the node that took over.
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = nodes[1].base_url.clone();
        loop {
            let seen = rt.block_on(subjects(&base, email, &account));
            let missing: Vec<&String> =
                accepted.iter().filter(|s| !seen.contains_key(*s)).collect();
            let doubled: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(doubled.is_empty(), "delivered twice: {doubled:?}");
            if missing.is_empty() {
                eprintln!("{} accepted messages, all delivered once", accepted.len());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} accepted messages never delivered: {:?}",
                missing.len(),
                accepted.len(),
                &missing[..missing.len().min(5)]
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

/// A node delivers its own account's mail even behind more than a page of queued entries that
/// are all another node's (that node paused, so they wait): the delivery feeder reads past them.
#[test]
fn a_node_delivers_its_own_mail_behind_a_page_of_another_nodes_entries() {
    with_fdb("smtp_paging", |fdb| {
        // Long leases: the paused node keeps its account for the whole test.
        let options = NodeOptions {
            lease_ms: Some(60_000),
            ..NodeOptions::default()
        };
        let nodes: Vec<Node> = ["a", "b"]
            .into_iter()
            .map(|name| Node::start_with(fdb, name, &options))
            .collect();
        let (paused_email, own_email) = ("paused@cluster.test", "own@cluster.test");
        create_account(&nodes[0], paused_email);
        create_account(&nodes[0], own_email);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let paused_account = rt.block_on(claim_through(&client(), &nodes[0], paused_email));
        let own_account = rt.block_on(claim_through(&client(), &nodes[1], own_email));
        nodes[0].signal("STOP");
        // More than the feeder's page (256) of entries for node a's account, through node b
        // (50 per session: the per-address connection rate stays under its burst).
        const QUEUED: usize = 300;
        let queued: Vec<String> = (0..QUEUED).map(|index| format!("q{index}")).collect();
        for subjects in queued.chunks(50) {
            let accepted = rt
                .block_on(send_in_one_session(nodes[1].smtp, paused_email, subjects))
                .expect("a session to node b");
            assert_eq!(accepted, subjects.len());
        }
        assert!(
            rt.block_on(send(nodes[1].smtp, own_email, "behind"))
                .unwrap()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = rt.block_on(subjects(&nodes[1].base_url, own_email, &own_account));
            if seen.contains_key("behind") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node b never delivered its own account's message behind {QUEUED} entries of node a"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Node a resumes and delivers its account's messages, each once.
        nodes[0].signal("CONT");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = rt.block_on(subjects(&nodes[1].base_url, paused_email, &paused_account));
            assert!(seen.values().all(|count| *count == 1), "{seen:?}");
            if queued.iter().all(|subject| seen.contains_key(subject)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {QUEUED} delivered after node a resumed",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
