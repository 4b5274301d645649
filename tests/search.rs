//! Full-text search through the real `jmap-client` crate: freshness of the index, exactness
//! while Emails are still being indexed or the index is rebuilt, isolation between accounts,
//! SearchSnippet/get, every structural filter combined with a text filter, and a `kill -9` of
//! the `tern` binary in the middle of indexing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, connect_jmap_client, mail_request, mailbox_with_role};
use jmap_client::client::Client;
use jmap_client::core::query::{Filter, QueryResponse};
use jmap_client::email::import::EmailImportResponse;
use jmap_client::email::search_snippet::SearchSnippetGetResponse;
use jmap_client::email::{self, query::Filter as EmailFilter};
use jmap_client::mailbox::Role;
use serde_json::json;
use tern::search::query::{Target, TextMatch};

fn message(message_id: &str, in_reply_to: Option<&str>, subject: &str, body: &str) -> Vec<u8> {
    let mut text = format!(
        "From: Bob Sender <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\nX-Project: {message_id} kestrel\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
    );
    if let Some(parent) = in_reply_to {
        text.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    text.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ));
    text.into_bytes()
}

fn with_attachment(message_id: &str, subject: &str, body: &str, attachment: &str) -> Vec<u8> {
    format!(
        "From: Carol <carol@example.test>\r\nTo: Alice <alice@example.test>\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n--b1\r\n\
         Content-Type: text/plain; name=\"minutes.txt\"\r\n\
         Content-Disposition: attachment; filename=\"minutes.txt\"\r\n\r\n{attachment}\r\n--b1--\r\n"
    )
    .into_bytes()
}

async fn import(
    client: &Client,
    raw: Vec<u8>,
    mailbox_id: &str,
    keywords: &[&str],
    received_at: i64,
) -> String {
    let blob_id = client
        .upload(None, raw, Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = mail_request(client);
    let import = request
        .import_email()
        .email(blob_id)
        .mailbox_ids([mailbox_id])
        .keywords(keywords.iter().copied())
        .received_at(received_at);
    let create_id = import.create_id();
    request
        .send_single::<EmailImportResponse>()
        .await
        .expect("Email/import answered")
        .created(&create_id)
        .expect("the Email was created")
        .take_id()
}

async fn query(client: &Client, filter: Filter<EmailFilter>) -> Vec<String> {
    let mut request = mail_request(client);
    request
        .query_email()
        .filter(filter)
        .sort([email::query::Comparator::received_at()]);
    request
        .send_single::<QueryResponse>()
        .await
        .expect("Email/query answered")
        .take_ids()
}

/// The store's number of a JMAP Email id.
fn email_number(id: &str) -> u64 {
    tern::jmap::types::Id::parse(id)
        .expect("an Id")
        .to_number(tern::jmap::mail::email::fields::EMAIL_ID_PREFIX)
        .expect("an Email id")
}

async fn account_number(server: &tern::server::RunningServer, email: &str) -> u32 {
    server
        .directory()
        .account(email)
        .await
        .expect("the account")
        .account_id
}

fn words(target: Target, text: &str) -> TextMatch {
    TextMatch::words(target, text)
}

#[tokio::test]
async fn new_mail_is_indexed_within_a_second_and_found_before_that_too() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = connect_jmap_client(&server.base_url(), &alice.email, &alice.password).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let running = server.running();
    let search = running.engine().search().expect("the index runs").clone();
    let account = account_number(running, &alice.email).await;

    for round in 0..3 {
        let word = format!("zanzibar{round}");
        let started = Instant::now();
        let id = import(
            &client,
            message(&format!("fresh{round}@x"), None, "Freshness", &word),
            &inbox,
            &[],
            1_000,
        )
        .await;
        // Exact at once, whether the index has it yet or not.
        assert_eq!(
            query(&client, EmailFilter::body(&word).into()).await,
            vec![id.clone()]
        );
        let number = email_number(&id);
        loop {
            let found = search
                .search(account, &words(Target::Body, &word))
                .expect("index query");
            if found.contains(&number) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "not in the index 1 s after import"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Destroying removes the document, as fast.
        let started = Instant::now();
        let mut request = mail_request(&client);
        request.set_email().destroy([id.as_str()]);
        request
            .send_single::<jmap_client::core::response::EmailSetResponse>()
            .await
            .expect("Email/set answered")
            .destroyed(&id)
            .expect("destroyed");
        assert!(
            query(&client, EmailFilter::body(&word).into())
                .await
                .is_empty()
        );
        while search
            .search(account, &words(Target::Body, &word))
            .expect("index query")
            .contains(&number)
        {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "document not removed in 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    search.flush().await.expect("flush");
    assert_eq!(
        tern::search::queue::pending_count(running.store())
            .await
            .expect("queue"),
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn two_accounts_with_the_same_words_never_see_each_other() {
    let server = TestServer::start().await;
    let (alice, bob) = (server.alice(), server.bob());
    let alice_client = connect_jmap_client(&server.base_url(), &alice.email, &alice.password).await;
    let bob_client = connect_jmap_client(&server.base_url(), &bob.email, &bob.password).await;
    let alice_inbox = mailbox_with_role(&alice_client, Role::Inbox).await;
    let bob_inbox = mailbox_with_role(&bob_client, Role::Inbox).await;
    let alice_mail = import(
        &alice_client,
        message("a@x", None, "Pineapple plans", "pineapple secretalice"),
        &alice_inbox,
        &[],
        1_000,
    )
    .await;
    let bob_mail = import(
        &bob_client,
        message("b@x", None, "Pineapple plans", "pineapple secretbob"),
        &bob_inbox,
        &[],
        1_000,
    )
    .await;
    let running = server.running();
    let search = running.engine().search().expect("index").clone();
    // Once through the scan of pending Emails, once through the index.
    for indexed in [false, true] {
        if indexed {
            search.flush().await.expect("flush");
        }
        assert_eq!(
            query(&alice_client, EmailFilter::text("pineapple").into()).await,
            vec![alice_mail.clone()]
        );
        assert_eq!(
            query(&bob_client, EmailFilter::text("pineapple").into()).await,
            vec![bob_mail.clone()]
        );
        assert!(
            query(&alice_client, EmailFilter::text("secretbob").into())
                .await
                .is_empty()
        );
        assert!(
            query(&bob_client, EmailFilter::text("secretalice").into())
                .await
                .is_empty()
        );
    }
    let alice_account = account_number(running, &alice.email).await;
    let bob_account = account_number(running, &bob.email).await;
    assert_eq!(
        search
            .search(alice_account, &words(Target::Any, "pineapple"))
            .expect("query")
            .len(),
        1
    );
    assert!(
        search
            .search(alice_account, &words(Target::Any, "secretbob"))
            .expect("query")
            .is_empty()
    );
    assert!(
        search
            .search(bob_account, &words(Target::Any, "secretalice"))
            .expect("query")
            .is_empty()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn search_snippets_mark_the_matching_words() {
    let server = TestServer::start_with(|config| config.jmap.max_objects_in_get = 5).await;
    let alice = server.alice();
    let client = connect_jmap_client(&server.base_url(), &alice.email, &alice.password).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let body = format!(
        "{} we will discuss the RESUME & <budget> tomorrow {}",
        "Opening words. ".repeat(30),
        "closing ".repeat(60)
    );
    let id = import(
        &client,
        message("s@x", None, "Café & <Résumé> plans", &body),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let other = import(
        &client,
        message("o@x", None, "Other", "nothing"),
        &inbox,
        &[],
        2_000,
    )
    .await;

    let mut request = mail_request(&client);
    request
        .get_search_snippet()
        .filter(EmailFilter::text("résumé"))
        .email_ids([id.as_str(), other.as_str(), "Mzzzzzz"]);
    let response = request
        .send_single::<SearchSnippetGetResponse>()
        .await
        .expect("SearchSnippet/get answered");
    let snippet = response.snippet(&id).expect("a snippet");
    assert_eq!(
        snippet.subject(),
        Some("Café &amp; &lt;<mark>Résumé</mark>&gt; plans")
    );
    let preview = snippet.preview().expect("the body matched");
    assert!(preview.len() <= 255, "{} octets", preview.len());
    assert!(
        preview.contains("<mark>RESUME</mark> &amp; &lt;budget&gt;"),
        "{preview}"
    );
    let unmatched = response
        .snippet(&other)
        .expect("a snippet for every found id");
    assert_eq!((unmatched.subject(), unmatched.preview()), (None, None));
    assert_eq!(response.not_found(), Some(&["Mzzzzzz".to_owned()][..]));

    // A subject-only filter marks the subject, not the body.
    let mut request = mail_request(&client);
    request
        .get_search_snippet()
        .filter(EmailFilter::subject("plans"))
        .email_ids([id.as_str()]);
    let response = request
        .send_single::<SearchSnippetGetResponse>()
        .await
        .expect("answered");
    let snippet = response.snippet(&id).expect("snippet");
    assert_eq!(
        snippet.subject(),
        Some("Café &amp; &lt;Résumé&gt; <mark>plans</mark>")
    );
    assert_eq!(snippet.preview(), None);

    // Errors: too many ids, a bad filter, no emailIds.
    let account = alice.account_id.clone();
    let using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"];
    for (arguments, error) in [
        (
            json!({"accountId": account, "emailIds": ["a", "b", "c", "d", "e", "f"]}),
            "requestTooLarge",
        ),
        (
            json!({"accountId": account, "filter": {"colour": "red"}, "emailIds": [id]}),
            "unsupportedFilter",
        ),
        (json!({"accountId": account}), "invalidArguments"),
    ] {
        let answer = server
            .post_api(
                alice,
                &json!({"using": using, "methodCalls": [["SearchSnippet/get", arguments, "s"]]}),
            )
            .await
            .json();
        assert_eq!(answer["methodResponses"][0][0], "error", "{answer}");
        assert_eq!(answer["methodResponses"][0][1]["type"], error, "{answer}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn every_structural_filter_combines_with_a_text_filter() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = connect_jmap_client(&server.base_url(), &alice.email, &alice.password).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let archive = mailbox_with_role(&client, Role::Archive).await;
    let long_body = format!("alpha {}", "padding words ".repeat(400));
    let first = import(
        &client,
        message("e1@x", None, "Alpha report", "short alpha"),
        &inbox,
        &["$seen"],
        1_000,
    )
    .await;
    let second = import(
        &client,
        with_attachment("e2@x", "Minutes", &long_body, "beta attached text"),
        &archive,
        &[],
        2_000,
    )
    .await;
    let third = import(
        &client,
        message("e3@x", None, "Gamma", "no greek letter one here"),
        &inbox,
        &["$flagged"],
        3_000,
    )
    .await;
    let fourth = import(
        &client,
        message("e4@x", Some("e1@x"), "Re: Alpha report", "alpha followup"),
        &inbox,
        &["$seen"],
        4_000,
    )
    .await;
    let all = BTreeSet::from([first.clone(), second.clone(), third.clone(), fourth.clone()]);
    let set = |ids: Vec<String>| ids.into_iter().collect::<BTreeSet<String>>();
    let structural: Vec<(&str, EmailFilter)> = vec![
        ("inMailbox", EmailFilter::in_mailbox(&inbox)),
        (
            "inMailboxOtherThan",
            EmailFilter::in_mailbox_other_than([&inbox]),
        ),
        ("before", EmailFilter::before(2_500)),
        ("after", EmailFilter::after(2_500)),
        ("minSize", EmailFilter::min_size(2_000)),
        ("maxSize", EmailFilter::max_size(2_000)),
        ("hasKeyword", EmailFilter::has_keyword("$seen")),
        ("notKeyword", EmailFilter::not_keyword("$seen")),
        (
            "allInThreadHaveKeyword",
            EmailFilter::all_in_thread_have_keyword("$seen"),
        ),
        (
            "someInThreadHaveKeyword",
            EmailFilter::some_in_thread_have_keyword("$flagged"),
        ),
        (
            "noneInThreadHaveKeyword",
            EmailFilter::none_in_thread_have_keyword("$seen"),
        ),
        ("hasAttachment", EmailFilter::has_attachment(true)),
    ];
    // Twice: while the Emails may still be pending (scanned), then from the index alone.
    for indexed in [false, true] {
        if indexed {
            server
                .running()
                .engine()
                .search()
                .expect("index")
                .flush()
                .await
                .expect("flush");
        }
        let text = set(query(&client, EmailFilter::text("alpha").into()).await);
        assert_eq!(
            text,
            BTreeSet::from([first.clone(), second.clone(), fourth.clone()]),
            "indexed: {indexed}"
        );
        // Each text field on its own.
        assert_eq!(
            query(&client, EmailFilter::body("beta").into()).await,
            vec![second.clone()]
        );
        assert_eq!(
            query(&client, EmailFilter::text("minutes").into()).await,
            vec![second.clone()]
        );
        assert_eq!(
            query(&client, EmailFilter::from("carol").into()).await,
            vec![second.clone()]
        );
        assert_eq!(
            query(&client, EmailFilter::to("alice@example.test").into())
                .await
                .len(),
            4
        );
        assert!(
            query(&client, EmailFilter::cc("alice").into())
                .await
                .is_empty()
        );
        assert!(
            query(&client, EmailFilter::bcc("alice").into())
                .await
                .is_empty()
        );
        assert_eq!(
            set(query(&client, EmailFilter::subject("ALPHA").into()).await),
            BTreeSet::from([first.clone(), fourth.clone()])
        );
        assert_eq!(
            query(
                &client,
                EmailFilter::header("X-Project", Some("e3@x kestrel")).into()
            )
            .await,
            vec![third.clone()]
        );
        assert_eq!(
            query(
                &client,
                EmailFilter::header("In-Reply-To", None::<&str>).into()
            )
            .await,
            vec![fourth.clone()]
        );
        for (name, condition) in &structural {
            let only = set(query(&client, condition.clone().into()).await);
            let and = set(query(
                &client,
                Filter::and([EmailFilter::text("alpha"), condition.clone()]),
            )
            .await);
            assert_eq!(and, &only & &text, "{name} AND text (indexed: {indexed})");
            let or = set(query(
                &client,
                Filter::or([EmailFilter::text("alpha"), condition.clone()]),
            )
            .await);
            assert_eq!(or, &only | &text, "{name} OR text (indexed: {indexed})");
            let and_not = set(query(
                &client,
                Filter::and([
                    Filter::from(condition.clone()),
                    Filter::not([EmailFilter::text("alpha")]),
                ]),
            )
            .await);
            assert_eq!(
                and_not,
                &only - &text,
                "{name} AND NOT text (indexed: {indexed})"
            );
            assert!(only.is_subset(&all));
        }
    }
    // Sorted and collapsed with a text filter.
    let mut request = mail_request(&client);
    request
        .query_email()
        .filter(EmailFilter::text("alpha"))
        .sort([email::query::Comparator::size().is_ascending(false)])
        .arguments()
        .collapse_threads(true);
    let ids = request
        .send_single::<QueryResponse>()
        .await
        .expect("answered")
        .take_ids();
    assert_eq!(ids.len(), 2, "first and fourth share a Thread: {ids:?}");
    assert_eq!(ids[0], second, "the largest first");
    server.shutdown().await;
}

/// One Email of the model the next test checks the server against.
struct Modelled {
    id: String,
    received_at: i64,
    in_inbox: bool,
    has_word: bool,
}

/// The Emails of `model` a query keeps, newest first (what the server must answer).
fn expected(model: &[Modelled], inbox_only: bool, word: bool) -> Vec<String> {
    let mut kept: Vec<&Modelled> = model
        .iter()
        .filter(|email| email.has_word == word && (!inbox_only || email.in_inbox))
        .collect();
    kept.sort_by_key(|email| std::cmp::Reverse(email.received_at));
    kept.iter().map(|email| email.id.clone()).collect()
}

/// Pages (limit 3) with their totals, newest first.
async fn pages_with_total(
    client: &Client,
    filter: Filter<EmailFilter>,
    positions: &[i32],
) -> Vec<(Vec<String>, Option<usize>)> {
    let mut pages = Vec::new();
    for position in positions {
        let mut request = mail_request(client);
        request
            .query_email()
            .filter(filter.clone())
            .sort([email::query::Comparator::received_at().is_ascending(false)])
            .position(*position)
            .limit(3)
            .calculate_total(true);
        let mut response = request
            .send_single::<QueryResponse>()
            .await
            .expect("Email/query answered");
        let total = response.total();
        pages.push((response.take_ids(), total));
    }
    pages
}

/// A word most Emails hold is answered along the receivedAt list, its total counted by the
/// index (or the Mailbox counter minus the Emails without it): exact with imports and destroys
/// still pending (the indexer held), and again once they are indexed.
#[tokio::test]
async fn common_word_totals_are_exact_with_pending_imports_and_destroys() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = connect_jmap_client(&server.base_url(), &alice.email, &alice.password).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let archive = mailbox_with_role(&client, Role::Archive).await;
    let search = server
        .running()
        .engine()
        .search()
        .expect("the index runs")
        .clone();
    let mut model = Vec::new();
    // 11 Emails with "heron", 5 with "wren" instead; two thirds in the Inbox.
    for number in 0..16i64 {
        let has_word = number % 3 != 2;
        let in_inbox = number % 4 != 3;
        let body = if has_word {
            "heron sighted"
        } else {
            "wren seen"
        };
        let id = import(
            &client,
            message(&format!("h{number}@x"), None, "Birds", body),
            if in_inbox { &inbox } else { &archive },
            &[],
            10_000 + number * 100,
        )
        .await;
        model.push(Modelled {
            id,
            received_at: 10_000 + number * 100,
            in_inbox,
            has_word,
        });
    }
    search.flush().await.expect("flush");
    search.hold_indexing(true).await.expect("hold");
    // Pending: 4 imports (3 with "heron", two of them newest), 3 destroys (one "wren").
    for (number, has_word, in_inbox, received_at) in [
        (20i64, true, true, 20_000i64),
        (21, true, false, 10_050),
        (22, false, true, 19_000),
        (23, true, true, 10_250),
    ] {
        let body = if has_word {
            "heron again"
        } else {
            "wren again"
        };
        let id = import(
            &client,
            message(&format!("h{number}@x"), None, "Birds", body),
            if in_inbox { &inbox } else { &archive },
            &[],
            received_at,
        )
        .await;
        model.push(Modelled {
            id,
            received_at,
            in_inbox,
            has_word,
        });
    }
    let destroyed: Vec<String> = [15usize, 4, 5]
        .iter()
        .map(|index| model[*index].id.clone())
        .collect();
    let mut request = mail_request(&client);
    request
        .set_email()
        .destroy(destroyed.iter().map(String::as_str));
    let mut answer = request
        .send_single::<jmap_client::core::response::EmailSetResponse>()
        .await
        .expect("Email/set answered");
    for id in &destroyed {
        answer.destroyed(id).expect("destroyed");
    }
    model.retain(|email| !destroyed.contains(&email.id));
    let pending = tern::search::queue::pending_count(server.running().store())
        .await
        .expect("queue");
    assert_eq!(pending, 7, "the indexer holds the 4 imports and 3 destroys");

    for indexed in [false, true] {
        if indexed {
            search.hold_indexing(false).await.expect("release");
            search.flush().await.expect("flush");
        }
        // Most Emails hold "heron" (the index's non-matching Emails are kept), a third "wren"
        // (its matching ones are kept).
        let cases: Vec<(&str, Filter<EmailFilter>, bool, bool)> = vec![
            ("text heron", EmailFilter::text("heron").into(), false, true),
            (
                "inMailbox AND text heron",
                Filter::and([EmailFilter::in_mailbox(&inbox), EmailFilter::text("heron")]),
                true,
                true,
            ),
            (
                "body heron AND inMailbox",
                Filter::and([EmailFilter::body("heron"), EmailFilter::in_mailbox(&inbox)]),
                true,
                true,
            ),
            ("text wren", EmailFilter::text("wren").into(), false, false),
            (
                "inMailbox AND text wren",
                Filter::and([EmailFilter::in_mailbox(&inbox), EmailFilter::text("wren")]),
                true,
                false,
            ),
        ];
        for (name, filter, inbox_only, word) in cases {
            let all = expected(&model, inbox_only, word);
            let positions = [0, 3, all.len() as i32 - 1, all.len() as i32 + 5];
            for ((ids, total), position) in pages_with_total(&client, filter, &positions)
                .await
                .into_iter()
                .zip(positions)
            {
                let start = (position.max(0) as usize).min(all.len());
                let end = (start + 3).min(all.len());
                assert_eq!(
                    ids,
                    all[start..end].to_vec(),
                    "{name} at {position} (indexed: {indexed})"
                );
                assert_eq!(total, Some(all.len()), "{name} total (indexed: {indexed})");
            }
        }
    }
    server.shutdown().await;
}

const TERN: &str = env!("CARGO_BIN_EXE_tern");

fn tern(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(TERN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tern")
}

/// `tern serve` on `data_dir`; returns the child and its base URL.
// The caller owns the returned child and kills and reaps it; the lint cannot see past the return.
#[allow(clippy::zombie_processes)]
fn serve(data_dir: &Path) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(TERN)
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tern serve");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap_or(0);
        if read == 0 {
            // Reap the child before failing, so a failed start leaves no zombie behind.
            let status = child.wait();
            panic!("server exited before serving: {status:?}");
        }
        if let Some(rest) = line.trim_end().strip_prefix("Tern serving JMAP at ") {
            let url = rest.split_whitespace().next().expect("url").to_owned();
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = std::io::Read::read_to_string(&mut reader, &mut sink);
            });
            return (child, url);
        }
    }
}

/// Opens the stopped data directory in-process, lets the indexer finish, and returns
/// (documents in the index, Emails the index finds for `word`, pending tasks).
/// Deletes the index directory of a stopped in-process server. tantivy may still be finishing
/// a segment merge on its own threads for a moment after the server's shutdown returned (a
/// real process has exited by then): a removal that meets a file written meanwhile is tried
/// again.
fn remove_index_dir(data_dir: &Path) {
    let index = tern::search::index_dir(data_dir);
    for attempt in 1..=50 {
        match std::fs::remove_dir_all(&index) {
            Ok(()) => return,
            Err(error) if attempt < 50 && error.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("delete index: {error}"),
        }
    }
}

async fn settle(data_dir: &Path, email: &str, word: &str) -> (u64, usize, usize) {
    let mut config = tern::config::Config::default();
    config.server.data_dir = data_dir.to_path_buf();
    config.server.http = "127.0.0.1:0".parse().expect("address");
    config.admin.enabled = false;
    let running = tern::server::Server::start(config).await.expect("restart");
    let search = running.engine().search().expect("index").clone();
    // A rebuild queues its tasks in the background: wait for them and for the indexer.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        search.flush().await.expect("flush");
        let rebuilding = tern::search::queue::rebuilding_accounts(running.store())
            .await
            .expect("queue");
        let pending = tern::search::queue::pending_count(running.store())
            .await
            .expect("queue");
        if rebuilding.is_empty() && pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the index never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let account = account_number(&running, email).await;
    let found = search
        .search(account, &words(Target::Body, word))
        .expect("query")
        .len();
    let documents = search.document_count();
    let pending = tern::search::queue::pending_count(running.store())
        .await
        .expect("queue");
    running.shutdown().await;
    (documents, found, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_indexing_loses_and_doubles_nothing_and_the_index_rebuilds() {
    const MESSAGES: usize = 240;
    let data_dir = tempfile::tempdir().expect("data dir");
    let created = tern(
        &[
            "account",
            "create",
            "kill@example.test",
            "--password",
            "pw-kill-1",
        ],
        data_dir.path(),
    );
    assert!(created.status.success(), "{created:?}");
    let (mut child, base_url) = serve(data_dir.path());
    let client = connect_jmap_client(&base_url, "kill@example.test", "pw-kill-1").await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let mut blob_ids = Vec::with_capacity(MESSAGES);
    for index in 0..MESSAGES {
        let body = format!("ostrich number{index} {}", "lorem ipsum dolor ".repeat(50));
        let raw = message(
            &format!("k{index}@x"),
            None,
            &format!("Kill {index}"),
            &body,
        );
        blob_ids.push(
            client
                .upload(None, raw, Some("message/rfc822"))
                .await
                .expect("upload")
                .take_blob_id(),
        );
    }
    for chunk in blob_ids.chunks(40) {
        let mut request = mail_request(&client);
        for blob_id in chunk {
            request
                .import_email()
                .email(blob_id)
                .mailbox_ids([inbox.as_str()])
                .received_at(1_000);
        }
        request.send().await.expect("Email/import answered");
    }
    // Killed right after the last import was acknowledged: the indexer is mid-way.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    drop(client);

    let (documents, found, pending) = settle(data_dir.path(), "kill@example.test", "ostrich").await;
    assert_eq!((documents, found, pending), (MESSAGES as u64, MESSAGES, 0));

    // The index directory deleted: rebuilt from the store at start-up, exact meanwhile.
    remove_index_dir(data_dir.path());
    let (mut child, base_url) = serve(data_dir.path());
    let client = connect_jmap_client(&base_url, "kill@example.test", "pw-kill-1").await;
    let ids = query(&client, EmailFilter::body("ostrich").into()).await;
    assert_eq!(
        ids.len(),
        MESSAGES,
        "searches stay exact while the index is rebuilt"
    );
    assert_eq!(
        query(&client, EmailFilter::body("number7").into())
            .await
            .len(),
        1
    );
    drop(client);
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let (documents, found, _) = settle(data_dir.path(), "kill@example.test", "ostrich").await;
    assert_eq!((documents, found), (MESSAGES as u64, MESSAGES));

    // `tern index rebuild --account` on the stopped data directory: done at the next start.
    let rebuilt = tern(
        &["index", "rebuild", "--account", "kill@example.test"],
        data_dir.path(),
    );
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    assert!(
        String::from_utf8_lossy(&rebuilt.stdout).contains(&format!("({MESSAGES} emails)")),
        "{rebuilt:?}"
    );
    let (documents, found, _) = settle(data_dir.path(), "kill@example.test", "ostrich").await;
    assert_eq!((documents, found), (MESSAGES as u64, MESSAGES));
}
