//! The outbound queue across nodes: two nodes on one FoundationDB, both with their outbound
//! actor on and the same relay; messages submitted through both are each sent exactly once
//! (the actors' claims are store records, so two actors never send one message twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Node, NodeOptions, PASSWORD, create_account, free_port, with_fdb};

/// A relay that accepts everything and counts each Message-ID it receives.
async fn sink(listener: TcpListener, received: Arc<Mutex<HashMap<String, usize>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write.write_all(b"220 sink ESMTP\r\n").await;
            let mut in_data = false;
            let mut message_id = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if in_data {
                    if line == "." {
                        in_data = false;
                        if let Some(id) = message_id.take() {
                            *received.lock().unwrap().entry(id).or_insert(0) += 1;
                        }
                        let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                    } else if message_id.is_none()
                        && line.to_ascii_lowercase().starts_with("message-id:")
                    {
                        message_id = Some(line[11..].trim().to_owned());
                    }
                    continue;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go ahead\r\n"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"250 2.0.0 ok\r\n",
                };
                let _ = write.write_all(reply).await;
            }
        });
    }
}

async fn reply(lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>) -> u16 {
    loop {
        let line = lines.next_line().await.unwrap().expect("open");
        if line.as_bytes().get(3) == Some(&b' ') {
            return line[..3].parse().unwrap();
        }
    }
}

/// Submits one message with AUTH PLAIN; true on `250` after the data.
async fn submit(server: std::net::SocketAddr, user: &str, message_id: &str) -> bool {
    let stream = TcpStream::connect(server).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    assert_eq!(reply(&mut lines).await, 220);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
    for (command, expected) in [
        ("EHLO client.test\r\n".to_owned(), 250),
        (format!("AUTH PLAIN {credentials}\r\n"), 235),
        (format!("MAIL FROM:<{user}>\r\n"), 250),
        ("RCPT TO:<someone@remote.test>\r\n".to_owned(), 250),
        ("DATA\r\n".to_owned(), 354),
    ] {
        write.write_all(command.as_bytes()).await.unwrap();
        let code = reply(&mut lines).await;
        if code != expected {
            return false;
        }
    }
    let message = format!(
        "From: <{user}>\r\nTo: <someone@remote.test>\r\nSubject: out\r\n\
         Message-ID: {message_id}\r\n\r\nhello\r\n.\r\n"
    );
    write.write_all(message.as_bytes()).await.unwrap();
    let accepted = reply(&mut lines).await == 250;
    let _ = write.write_all(b"QUIT\r\n").await;
    accepted
}

#[test]
fn two_nodes_outbound_actors_send_each_message_once() {
    with_fdb("outbound_two_nodes", |fdb| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(HashMap::new()));
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let relay = listener.local_addr().unwrap();
        runtime.spawn(sink(listener, Arc::clone(&received)));
        let ports = [free_port(), free_port()];
        let nodes: Vec<Node> = ["a", "b"]
            .into_iter()
            .zip(ports)
            .map(|(name, port)| {
                Node::start_with(
                    fdb,
                    name,
                    &NodeOptions {
                        submission: Some(port),
                        relay: Some(relay),
                        ..NodeOptions::default()
                    },
                )
            })
            .collect();
        let user = "sender@cluster.test";
        create_account(&nodes[0], user);
        let total = 40;
        let accepted = runtime.block_on(async {
            let mut accepted = Vec::new();
            for index in 0..total {
                let port = ports[index % 2];
                let id = format!("<out{index}@cluster.test>");
                if submit(
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    user,
                    &id,
                )
                .await
                {
                    accepted.push(id);
                }
            }
            accepted
        });
        assert_eq!(accepted.len(), total, "every submission accepted");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = received.lock().unwrap().clone();
            let doubled: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
            assert!(doubled.is_empty(), "sent twice: {doubled:?}");
            if accepted.iter().all(|id| seen.contains_key(id)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {total} relayed",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Every attempt's outcome was recorded: the queue drains (an attempt whose record was
        // refused would leave its message queued, to be sent a second time later).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = nodes[1].tern(&["queue", "list"]);
            if listed.contains("the outbound queue is empty") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the outbound queue did not drain:\n{listed}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let seen = received.lock().unwrap().clone();
        let doubled: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
        assert!(doubled.is_empty(), "sent twice: {doubled:?}");
        eprintln!("relayed {total} messages, each exactly once");
    });
}
