//! Search scenarios of the bench tool (issue 4), on an account filled by `mail-populate`:
//! - `search-query`: `--requests N` times each (limit 50, receivedAt descending): a text query
//!   matching one sender of 200 (~0.5% of the mail), a header query matching one message, a
//!   from query within the Inbox, and a text query on a word nearly every message holds (the
//!   worst case), alone and within the Inbox. Percentiles per operation; the headline is the
//!   first.
//! - `search-freshness`: `--requests N` sequential imports of one message each; for each, the
//!   time from the Email/import answer until the index has committed it (no search task left,
//!   read from Tern's loopback admin endpoint: needs `--data-dir DIR` of the server).
//! - `search-rebuild`: `tern index rebuild` of every account through the admin endpoint
//!   (`--data-dir`), timed until the last task is committed: bulk indexing messages/s, and
//!   the size of the index directory afterwards.
//!
//! Freshness and rebuild read Tern's own queue, so they measure Tern only; `search-query`
//! speaks plain JMAP and works against any server holding the populated account.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tern::http::admin_client::AdminClient;

use super::mail::{call, inbox_id, time_calls, upload};
use super::{Connection, MAX_DURATION, Options, RunFigures, Samples, Target};

pub async fn query(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let inbox = inbox_id(&mut connection, target).await?;
    let account = target.account_id.clone();
    let sort = json!([{"property": "receivedAt", "isAscending": false}]);
    let query = |filter: Value| json!([["Email/query", {"accountId": account, "filter": filter, "sort": sort, "limit": 50, "calculateTotal": true}, "q"]]);
    let operations: Vec<(&str, Value)> = vec![
        (
            "text: one sender of 200",
            query(json!({"text": "sender17"})),
        ),
        (
            "header Message-ID: one message",
            query(json!({"header": ["Message-ID", "m4242@bench.example"]})),
        ),
        (
            "inMailbox Inbox AND from: one sender",
            query(
                json!({"operator": "AND", "conditions": [{"inMailbox": inbox}, {"from": "sender23"}]}),
            ),
        ),
        (
            "text: a word in nearly every message",
            query(json!({"text": "budget"})),
        ),
        (
            "inMailbox Inbox AND text: a word in nearly every message",
            query(
                json!({"operator": "AND", "conditions": [{"inMailbox": inbox}, {"text": "budget"}]}),
            ),
        ),
    ];
    let mut headline = f64::NAN;
    let mut headline_p99 = f64::NAN;
    for (name, calls) in operations {
        let (summary, warm_response) = time_calls(
            &mut connection,
            target,
            &calls,
            options.warmup.clamp(1, 20),
            options.requests,
        )
        .await?;
        let total = &warm_response["methodResponses"][0][1]["total"];
        println!("  {name} (total {total}): {summary}");
        if headline.is_nan() {
            headline = summary.p50;
            headline_p99 = summary.p99;
        }
    }
    Ok(RunFigures {
        headline,
        headline_unit: "ms p50 (text, one sender of 200)",
        p50: headline,
        p99: headline_p99,
    })
}

async fn admin(options: &Options) -> Result<AdminClient, String> {
    let data_dir = options
        .data_dir
        .as_deref()
        .ok_or("this scenario needs --data-dir (the server's, for its admin endpoint)")?;
    AdminClient::connect(Path::new(data_dir))
        .await
        .map_err(|error| format!("admin endpoint: {error:?}"))
}

async fn wait_until_indexed(admin: &AdminClient, poll: Duration) -> Result<(), String> {
    let deadline = Instant::now() + MAX_DURATION;
    loop {
        let pending = admin
            .index_pending()
            .await
            .map_err(|error| format!("admin endpoint: {error:?}"))?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{pending} search tasks still pending"));
        }
        tokio::time::sleep(poll).await;
    }
}

pub async fn freshness(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let admin = admin(options).await?;
    let mut connection = Connection::open(target.api.address).await?;
    let inbox = inbox_id(&mut connection, target).await?;
    wait_until_indexed(&admin, Duration::from_millis(50)).await?;
    let mut samples = Samples::default();
    let base = u64::from(std::process::id()) * 1_000_000;
    for index in 0..options.requests.min(2_000) {
        let raw = format!(
            "From: Fresh <fresh@example.net>\r\nTo: Alice <alice@example.test>\r\n\
             Subject: freshness probe {index}\r\nMessage-ID: <f{base}-{index}@bench.example>\r\n\
             Content-Type: text/plain\r\n\r\nfreshword{base}x{index} and some text\r\n"
        );
        let blob_id = upload(&mut connection, target, raw.into_bytes()).await?;
        call(
            &mut connection,
            target,
            json!([["Email/import", {"accountId": target.account_id, "emails": {
                "i": {"blobId": blob_id, "mailboxIds": {inbox.clone(): true}}
            }}, "i"]]),
        )
        .await?;
        let imported = Instant::now();
        wait_until_indexed(&admin, Duration::from_millis(2)).await?;
        samples.push(imported.elapsed());
    }
    let summary = samples.summary();
    println!("  import acknowledged → committed in the index: {summary}");
    Ok(RunFigures {
        headline: summary.p99,
        headline_unit: "ms freshness p99",
        p50: summary.p50,
        p99: summary.p99,
    })
}

fn directory_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_size(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

pub async fn rebuild(options: &Options) -> Result<RunFigures, String> {
    let admin = admin(options).await?;
    wait_until_indexed(&admin, Duration::from_millis(50)).await?;
    let accounts = admin
        .list_accounts()
        .await
        .map_err(|error| format!("admin endpoint: {error:?}"))?;
    let started = Instant::now();
    let mut emails = 0;
    for account in accounts {
        emails += admin
            .rebuild_index(&account.email)
            .await
            .map_err(|error| format!("admin endpoint: {error:?}"))?;
    }
    let queued = started.elapsed();
    wait_until_indexed(&admin, Duration::from_millis(20)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = emails as f64 / elapsed;
    let data_dir = options.data_dir.as_deref().unwrap_or_default();
    let index_bytes = directory_size(&Path::new(data_dir).join("search"));
    println!(
        "  rebuilt {emails} Emails in {elapsed:.1} s ({rate:.0}/s; queueing took {:.1} s); \
         index directory {:.1} MB",
        queued.as_secs_f64(),
        index_bytes as f64 / 1e6
    );
    Ok(RunFigures {
        headline: rate,
        headline_unit: "Emails indexed/s",
        p50: f64::NAN,
        p99: f64::NAN,
    })
}

/// `search-layout`: in-process, no server needed beyond discovery. Indexes `--messages N`
/// synthetic Emails spread over 200 accounts (a) in one shared index with an account term and
/// (b) in one index per account, and compares indexing time, files and bytes on disk, and the
/// latency of a one-account word query. The figures behind the choice in schema/search.md.
pub async fn layout(options: &Options) -> Result<RunFigures, String> {
    use tern::search::query::{EmailIds, Target as Field, TextMatch, to_query};
    use tern::search::schema;
    const ACCOUNTS: u32 = 200;
    let per_account = (options.messages / u64::from(ACCOUNTS)).max(1);
    let vocabulary: Vec<String> = (0..5_000).map(|n| format!("w{n:x}q")).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut documents = Vec::new();
    for account in 0..ACCOUNTS {
        for email in 0..per_account {
            let body: Vec<&str> = (0..150)
                .map(|_| vocabulary[(next() % vocabulary.len() as u64) as usize].as_str())
                .collect();
            let content = tern::search::document::EmailContent {
                subject: body[..5].join(" "),
                from: format!("Sender {account} sender{account}@example.net"),
                body: body.join(" "),
                ..Default::default()
            };
            documents.push((account, email, content));
        }
    }
    let root = tempfile::tempdir().map_err(|error| error.to_string())?;
    let open = |dir: &Path| -> Result<tantivy::Index, String> {
        std::fs::create_dir_all(dir).map_err(|error| error.to_string())?;
        let index = tantivy::Index::create_in_dir(dir, schema::build().0)
            .map_err(|error| error.to_string())?;
        index
            .tokenizers()
            .register(schema::ANALYZER, schema::analyzer());
        Ok(index)
    };
    let fields = schema::build().1;
    // (a) shared: one writer, commits every 2,000 documents (as the indexer does).
    let started = Instant::now();
    let shared = open(&root.path().join("shared"))?;
    let mut writer: tantivy::IndexWriter = shared
        .writer_with_num_threads(1, 32 << 20)
        .map_err(|error| error.to_string())?;
    for (number, (account, email, content)) in documents.iter().enumerate() {
        writer
            .add_document(tern::search::indexer::build_document(
                &fields, *account, *email, content,
            ))
            .map_err(|error| error.to_string())?;
        if number % 2_000 == 1_999 {
            writer.commit().map_err(|error| error.to_string())?;
        }
    }
    writer.commit().map_err(|error| error.to_string())?;
    writer
        .wait_merging_threads()
        .map_err(|error| error.to_string())?;
    let shared_seconds = started.elapsed().as_secs_f64();
    // (b) one index per account: a writer (15 MB minimum each) opened per account in turn.
    let started = Instant::now();
    let mut per_account_indexes = Vec::new();
    for account in 0..ACCOUNTS {
        let index = open(&root.path().join(format!("account-{account}")))?;
        let mut writer: tantivy::IndexWriter = index
            .writer_with_num_threads(1, 15 << 20)
            .map_err(|error| error.to_string())?;
        for (_, email, content) in documents.iter().filter(|(owner, _, _)| *owner == account) {
            writer
                .add_document(tern::search::indexer::build_document(
                    &fields, account, *email, content,
                ))
                .map_err(|error| error.to_string())?;
        }
        writer.commit().map_err(|error| error.to_string())?;
        writer
            .wait_merging_threads()
            .map_err(|error| error.to_string())?;
        per_account_indexes.push(index);
    }
    let per_account_seconds = started.elapsed().as_secs_f64();
    let files = |path: &Path| std::fs::read_dir(path).map(|dir| dir.count()).unwrap_or(0);
    let shared_files = files(&root.path().join("shared"));
    let per_account_files: usize = (0..ACCOUNTS)
        .map(|account| files(&root.path().join(format!("account-{account}"))))
        .sum();
    let shared_bytes = directory_size(&root.path().join("shared"));
    let per_account_bytes = directory_size(root.path()) - shared_bytes;
    // Query: one word in one account.
    let word_query =
        |account: u32| TextMatch::words(Field::Any, &vocabulary[(account * 7) as usize]);
    let reader = shared.reader().map_err(|error| error.to_string())?;
    let mut shared_samples = Samples::default();
    let mut shared_hits = 0;
    for round in 0..options.requests.min(2_000) {
        let account = (round % u64::from(ACCOUNTS)) as u32;
        let started = Instant::now();
        let searcher = reader.searcher();
        let hits = searcher
            .search(
                to_query(&fields, account, &word_query(account)).as_ref(),
                &EmailIds,
            )
            .map_err(|error| error.to_string())?;
        shared_samples.push(started.elapsed());
        shared_hits += hits.len();
    }
    let readers: Vec<tantivy::IndexReader> = per_account_indexes
        .iter()
        .map(|index| index.reader().map_err(|error| error.to_string()))
        .collect::<Result<_, _>>()?;
    let mut own_samples = Samples::default();
    let mut own_hits = 0;
    for round in 0..options.requests.min(2_000) {
        let account = (round % u64::from(ACCOUNTS)) as u32;
        let started = Instant::now();
        let searcher = readers[account as usize].searcher();
        let hits = searcher
            .search(
                to_query(&fields, account, &word_query(account)).as_ref(),
                &EmailIds,
            )
            .map_err(|error| error.to_string())?;
        own_samples.push(started.elapsed());
        own_hits += hits.len();
    }
    let shared_summary = shared_samples.summary();
    println!(
        "  shared index: {} docs indexed in {shared_seconds:.2} s, {shared_files} files, {:.1} MB; \
         query {shared_summary} ({shared_hits} hits)",
        documents.len(),
        shared_bytes as f64 / 1e6
    );
    println!(
        "  one index per account ({ACCOUNTS}): indexed in {per_account_seconds:.2} s, \
         {per_account_files} files, {:.1} MB; query {} ({own_hits} hits)",
        per_account_bytes as f64 / 1e6,
        own_samples.summary()
    );
    Ok(RunFigures {
        headline: per_account_seconds / shared_seconds,
        headline_unit: "× indexing time per-account vs shared",
        p50: shared_summary.p50,
        p99: shared_summary.p99,
    })
}
