//! Sieve (RFC 5228) at delivery, sans-IO: a compiled script and a message in, a filing plan
//! out. The interpreter is `sieve-rs` (AGPL-3.0-only, Tern's licence); this module answers
//! its questions (does a mailbox exist) from values it is given and turns its actions into a
//! [`Plan`] that `smtp::delivery` applies inside the delivering commit, so a crash or a
//! replay re-runs the script and files the message once.
//!
//! What is carried out: keep, fileinto (with `:create`, RFC 5490 §3.2; by name or `INBOX`),
//! discard, stop, imap4flags (RFC 5232) as keywords, and every test. Actions that leave the
//! server (redirect, reject/ereject, vacation, notify) are recorded in the plan and answered
//! as done to the interpreter, and the message is kept: filing a message never depends on
//! them (their sending is left for a later slice; see the README).

use std::collections::BTreeSet;
use std::sync::Arc;

use sieve::{Compiler, Event, Input, Runtime, Sieve};

/// The interpreter's limits (RFC 5228 §10: implementations limit what a script may do): a
/// runaway script stops, and the message is kept (RFC 5228 §2.10.6).
pub const MAX_SCRIPT_SIZE: usize = 64 * 1024;
pub const CPU_LIMIT: usize = 5_000;
pub const MAX_REDIRECTS: usize = 1;

/// The extensions a script may `require` (advertised in the JMAP capability).
pub const EXTENSIONS: [&str; 16] = [
    "fileinto",
    "envelope",
    "imap4flags",
    "body",
    "variables",
    "relational",
    "comparator-i;ascii-numeric",
    "copy",
    "date",
    "index",
    "mailbox",
    "subaddress",
    "spamtest",
    "virustest",
    "regex",
    "include",
];

/// The active script's content (RFC 9661: at most one script is active), if any: the
/// SieveScript documents (`store::docs`, `DataType::SieveScript`) and the blob each names.
pub async fn active_script(
    tx: &mut dyn crate::store::Transaction,
    account_id: u32,
) -> crate::store::StoreResult<Option<Vec<u8>>> {
    use crate::store::blob::{BlobHash, WholeBlob, read_whole_in};
    use crate::store::commit::DataType;
    use crate::store::docs;
    for id in docs::list_ids(tx, account_id, DataType::SieveScript).await? {
        let Some(doc) = docs::load(tx, account_id, DataType::SieveScript, id).await? else {
            continue;
        };
        if doc.get("isActive") != Some(&serde_json::Value::Bool(true)) {
            continue;
        }
        // `G` + 64 hex digits: the SHA-256 of the script (a whole blob, never a part).
        let Some(digest) = doc
            .get("blobId")
            .and_then(serde_json::Value::as_str)
            .and_then(|text| text.strip_prefix('G'))
            .and_then(hex_digest)
        else {
            return Ok(None);
        };
        return Ok(
            match read_whole_in(tx, &BlobHash(digest), MAX_SCRIPT_SIZE as u64).await? {
                WholeBlob::Content(content) => Some(content),
                _ => None,
            },
        );
    }
    Ok(None)
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// Every Mailbox of the account as a lower-cased `/`-separated path (for `mailboxexists`).
pub fn mailbox_paths(mailboxes: &crate::mail::mailbox::tree::Mailboxes) -> BTreeSet<String> {
    mailboxes
        .keys()
        .map(|id| {
            let mut names: Vec<&str> = crate::mail::mailbox::tree::ancestors(mailboxes, *id)
                .iter()
                .rev()
                .filter_map(|ancestor| mailboxes.get(ancestor).map(|m| m.name.as_str()))
                .collect();
            names.push(mailboxes[id].name.as_str());
            names.join("/").to_lowercase()
        })
        .collect()
}

/// The Mailbox a `fileinto` names (`/` separates levels, compared case-insensitively), inside
/// the delivering commit; with `create` (RFC 5490 §3.2) missing levels are created. `None`:
/// no such Mailbox (the message then goes to the Inbox, RFC 5228 §4.1 says a failed fileinto
/// keeps it).
pub async fn resolve_folder(
    tx: &mut dyn crate::store::Transaction,
    changes: &mut crate::store::commit::Changes,
    account_id: u32,
    path: &str,
    create: bool,
) -> crate::store::StoreResult<Option<u64>> {
    use crate::mail::mailbox::{self, MAX_MAILBOX_DEPTH, MAX_SIZE_MAILBOX_NAME, Mailbox};
    use crate::store::commit::{DataType, allocate_id};
    let segments: Vec<&str> = path
        .split('/')
        .map(str::trim)
        .filter(|segment| !segment.is_empty())
        .collect();
    let valid = !segments.is_empty()
        && segments.len() <= MAX_MAILBOX_DEPTH
        && segments.iter().all(|segment| {
            segment.len() <= MAX_SIZE_MAILBOX_NAME && !segment.chars().any(char::is_control)
        });
    if !valid {
        return Ok(None);
    }
    let all = mailbox::load_all(tx, account_id).await?;
    let mut parent: Option<u64> = None;
    let mut created_any = false;
    for segment in segments {
        let found = all
            .iter()
            .find(|(_, mailbox)| {
                mailbox.parent_id == parent && mailbox.name.eq_ignore_ascii_case(segment)
            })
            .map(|(id, _)| *id);
        parent = match found {
            Some(id) => Some(id),
            None if create => {
                let id = allocate_id(tx, account_id, DataType::Mailbox).await?;
                let new = Mailbox {
                    name: segment.to_owned(),
                    parent_id: parent,
                    role: None,
                    sort_order: 0,
                    is_subscribed: true,
                    share_with: Default::default(),
                    unsubscribed: Default::default(),
                };
                mailbox::save(tx, account_id, id, &new, None)?;
                changes.created(DataType::Mailbox, id);
                created_any = true;
                Some(id)
            }
            None => return Ok(None),
        };
    }
    if created_any {
        mailbox::record_properties_changed(tx, account_id).await?;
    }
    Ok(parent)
}

/// Compiles a script; the compiler's message (with line and column) when it is not valid.
pub fn compile(script: &[u8]) -> Result<Arc<Sieve>, String> {
    if script.len() > MAX_SCRIPT_SIZE {
        return Err(format!(
            "the script is larger than {MAX_SCRIPT_SIZE} octets"
        ));
    }
    Compiler::new()
        .with_max_script_size(MAX_SCRIPT_SIZE)
        .compile(script)
        .map(Arc::new)
        .map_err(|error| error.to_string())
}

/// Compiled scripts by the SHA-256 of their text, at most `capacity` (`[delivery]
/// sieve_cache_scripts`; 0: none kept): a delivery to an account whose script did not change
/// skips compiling it. When full, one entry makes room for the new one.
pub struct ScriptCache {
    capacity: usize,
    scripts: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Sieve>>>,
}

impl ScriptCache {
    pub fn new(capacity: usize) -> ScriptCache {
        ScriptCache {
            capacity,
            scripts: Default::default(),
        }
    }

    /// The compiled script for `content`, compiled now on a miss.
    pub fn get_or_compile(&self, content: &[u8]) -> Result<Arc<Sieve>, String> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(content).into();
        let lock = || {
            self.scripts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(script) = lock().get(&key) {
            return Ok(Arc::clone(script));
        }
        let script = compile(content)?;
        if self.capacity > 0 {
            let mut scripts = lock();
            if scripts.len() >= self.capacity
                && let Some(evicted) = scripts.keys().next().copied()
            {
                scripts.remove(&evicted);
            }
            scripts.insert(key, Arc::clone(&script));
        }
        Ok(script)
    }

    pub fn len(&self) -> usize {
        self.scripts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`compile`], and refuses a script that requires an extension the interpreter lacks: what
/// a script must pass to be stored (JMAP SieveScript/set and /validate).
pub fn validate(script: &[u8]) -> Result<Arc<Sieve>, String> {
    let compiled = compile(script)?;
    // RFC 5228 §3.2: a script requiring an extension the implementation lacks MUST be
    // refused. The compiler accepts any name; its `require` runs first, so a dry run over an
    // empty message reports an unknown one before anything else happens.
    let runtime = Runtime::new().with_cpu_limit(CPU_LIMIT);
    let mut instance = runtime.filter(b"\r\n");
    let mut input = Input::script("validate", Arc::clone(&compiled));
    while let Some(result) = instance.run(input) {
        match result {
            Err(sieve::runtime::RuntimeError::CapabilityNotSupported(name)) => {
                return Err(format!("the extension {name:?} is not supported"));
            }
            Err(sieve::runtime::RuntimeError::CapabilityNotAllowed(name)) => {
                return Err(format!("the extension {name} is not allowed"));
            }
            // Anything else depends on the message: the script is valid.
            Err(_) => break,
            Ok(_) => input = Input::False,
        }
    }
    Ok(compiled)
}

/// Where a copy of the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folder {
    /// `keep` and `fileinto "INBOX"`.
    Inbox,
    /// A Mailbox by name (`/` separates levels), created when `create` and missing.
    Named { name: String, create: bool },
}

/// The script's decision for one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Each target with the keywords its copy gets (RFC 5232 flags mapped to keywords).
    pub targets: Vec<(Folder, BTreeSet<String>)>,
    /// Addresses the script redirected to (not sent by this slice).
    pub redirects: Vec<String>,
    /// A `reject` reason (the message is kept instead).
    pub rejected: Option<String>,
    /// Why the script stopped early, if it did (the message is then kept).
    pub error: Option<String>,
}

impl Plan {
    /// The plan when there is no script, or it failed: keep (RFC 5228 §2.10.2 implicit keep).
    pub fn keep() -> Plan {
        Plan {
            targets: vec![(Folder::Inbox, BTreeSet::new())],
            ..Plan::default()
        }
    }

    /// Whether the message is stored nowhere (`discard`).
    pub fn discards(&self) -> bool {
        self.targets.is_empty()
    }
}

/// What the script may ask about the account.
pub struct Account<'a> {
    /// The recipient's address (`:user` of envelope tests, vacation's `:addresses`).
    pub address: &'a str,
    /// The names of the account's Mailboxes (for `mailboxexists`), lower-cased paths.
    pub mailbox_paths: &'a BTreeSet<String>,
}

/// An RFC 5232 flag as an RFC 8621 keyword; `None` for `\Deleted` and what is no keyword.
pub fn keyword_of_flag(flag: &str) -> Option<String> {
    let keyword = match flag.to_ascii_lowercase().as_str() {
        "\\seen" => "$seen".to_owned(),
        "\\flagged" => "$flagged".to_owned(),
        "\\answered" => "$answered".to_owned(),
        "\\draft" => "$draft".to_owned(),
        "\\deleted" | "\\recent" => return None,
        other => other.to_owned(),
    };
    // RFC 8621 §4.1.1: a keyword is 1-255 chars of %x21-%x7e without ( ) { ] % * " \.
    let valid = !keyword.is_empty()
        && keyword.len() <= 255
        && keyword
            .bytes()
            .all(|byte| (0x21..=0x7e).contains(&byte) && !b"(){]%*\"\\".contains(&byte));
    valid.then_some(keyword)
}

fn keywords(flags: &[String]) -> BTreeSet<String> {
    flags
        .iter()
        .filter_map(|flag| keyword_of_flag(flag))
        .collect()
}

/// Runs `script` over `raw` for `account` (the envelope: `mail_from`, `rcpt_to`).
pub fn run(
    script: &Arc<Sieve>,
    raw: &[u8],
    account: &Account<'_>,
    mail_from: &str,
    rcpt_to: &str,
) -> Plan {
    let runtime = Runtime::new()
        .with_cpu_limit(CPU_LIMIT)
        .with_max_redirects(MAX_REDIRECTS)
        .with_max_nested_includes(0);
    let mut instance = runtime
        .filter(raw)
        .with_user_address(account.address.to_owned())
        .with_envelope(sieve::Envelope::From, mail_from.to_owned())
        .with_envelope(sieve::Envelope::To, rcpt_to.to_owned());
    let mut plan = Plan::default();
    let mut input = Input::script("active", Arc::clone(script));
    let mut acted = false;
    while let Some(result) = instance.run(input) {
        input = Input::True;
        match result {
            Ok(Event::Keep { flags, .. }) => {
                acted = true;
                plan.targets.push((Folder::Inbox, keywords(&flags)));
            }
            Ok(Event::FileInto {
                folder,
                flags,
                create,
                ..
            }) => {
                acted = true;
                let target = match folder.eq_ignore_ascii_case("inbox") {
                    true => Folder::Inbox,
                    false => Folder::Named {
                        name: folder,
                        create,
                    },
                };
                plan.targets.push((target, keywords(&flags)));
            }
            Ok(Event::Discard) => acted = true,
            Ok(Event::Reject { reason, .. }) => {
                acted = true;
                plan.rejected = Some(reason);
            }
            Ok(Event::SendMessage { recipient, .. }) => {
                if let sieve::Recipient::Address(address) = recipient {
                    plan.redirects.push(address);
                }
            }
            Ok(Event::MailboxExists { mailboxes, .. }) => {
                let exists = mailboxes.iter().all(|mailbox| match mailbox {
                    sieve::Mailbox::Name(name) => {
                        name.eq_ignore_ascii_case("inbox")
                            || account.mailbox_paths.contains(&name.to_lowercase())
                    }
                    sieve::Mailbox::Id(_) => false,
                });
                input = exists.into();
            }
            // No global or personal script to include, no external lists, no duplicate
            // tracking: each answers false.
            Ok(Event::IncludeScript { .. })
            | Ok(Event::ListContains { .. })
            | Ok(Event::DuplicateId { .. }) => input = Input::False,
            Ok(Event::Function { .. }) => input = Input::False,
            Ok(Event::SetEnvelope { .. })
            | Ok(Event::Notify { .. })
            | Ok(Event::CreatedMessage { .. }) => {}
            Err(error) => {
                // RFC 5228 §2.10.6: a runtime error keeps the message.
                plan.error = Some(format!("{error:?}"));
                return Plan {
                    error: plan.error,
                    ..Plan::keep()
                };
            }
        }
    }
    // Outside the server's reach (reject): the message is kept rather than lost.
    if plan.rejected.is_some() && plan.targets.is_empty() {
        plan.targets.push((Folder::Inbox, BTreeSet::new()));
    }
    if !acted {
        plan.targets.push((Folder::Inbox, BTreeSet::new()));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Sales <list-sales@example.org>\r\nTo: jdoe@example.org\r\n\
        List-ID: <sales@example.org>\r\nSubject: TPS Reports\r\nX-Priority: 1\r\n\r\n\
        We're putting new coversheets on all the TPS reports.\r\n";

    fn plan(script: &str) -> Plan {
        let compiled = compile(script.as_bytes()).expect("compiles");
        let paths: BTreeSet<String> = ["work", "lists/sales"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let account = Account {
            address: "jdoe@example.org",
            mailbox_paths: &paths,
        };
        run(
            &compiled,
            MESSAGE,
            &account,
            "list-sales@example.org",
            "jdoe+tps@example.org",
        )
    }

    fn named(name: &str, create: bool) -> Folder {
        Folder::Named {
            name: name.to_owned(),
            create,
        }
    }

    #[test]
    fn no_action_is_an_implicit_keep() {
        assert_eq!(plan("# nothing\r\n"), Plan::keep());
        assert_eq!(plan("if false { discard; }"), Plan::keep());
    }

    #[test]
    fn fileinto_flags_and_stop_follow_rfc_5228_and_5232() {
        let result = plan(
            r#"require ["fileinto", "imap4flags", "body", "envelope", "subaddress"];
            if body :contains "TPS" { addflag "\\Flagged"; addflag "work-item"; }
            if envelope :detail "to" "tps" { fileinto "Work"; }
            if header :contains "List-ID" "sales" { fileinto :flags "\\Seen" "Lists/Sales"; stop; }
            fileinto "Never";"#,
        );
        let work_flags: BTreeSet<String> = ["$flagged", "work-item"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(result.targets.len(), 2, "{result:?}");
        assert_eq!(result.targets[0], (named("Work", false), work_flags));
        assert_eq!(
            result.targets[1],
            (named("Lists/Sales", false), ["$seen".to_string()].into())
        );
    }

    #[test]
    fn discard_stores_nothing_and_keep_files_into_the_inbox() {
        let result = plan(r#"if address :is "from" "list-sales@example.org" { discard; }"#);
        assert!(result.discards(), "{result:?}");
        let result = plan(
            r#"require ["fileinto", "mailbox"];
            if not mailboxexists "Archive/2026" { fileinto :create "Archive/2026"; }
            keep;"#,
        );
        assert_eq!(
            result.targets,
            vec![
                (named("Archive/2026", true), BTreeSet::new()),
                (Folder::Inbox, BTreeSet::new())
            ]
        );
    }

    #[test]
    fn redirect_and_reject_are_recorded_and_the_message_is_kept() {
        let result = plan(r#"redirect "boss@example.org";"#);
        assert_eq!(result.redirects, vec!["boss@example.org".to_owned()]);
        let result = plan(
            r#"require "reject"; if header :contains "subject" "TPS" { reject "no more TPS"; }"#,
        );
        assert_eq!(result.rejected.as_deref(), Some("no more TPS"));
        assert_eq!(result.targets, vec![(Folder::Inbox, BTreeSet::new())]);
    }

    #[test]
    fn bad_scripts_are_refused_with_a_position() {
        let error = compile(b"if header :contains \"subject\" { keep; }").expect_err("invalid");
        assert!(!error.is_empty());
        assert!(compile(b"require \"nosuchextension\"; keep;").is_ok());
        let error = validate(b"require \"nosuchextension\"; keep;").expect_err("unknown extension");
        assert!(!error.is_empty(), "{error}");
        assert!(compile(&vec![b'#'; MAX_SCRIPT_SIZE + 1]).is_err());
    }

    #[test]
    fn the_script_cache_is_bounded_and_reuses_compiled_scripts() {
        let cache = ScriptCache::new(2);
        let first = cache.get_or_compile(b"keep;").expect("compiles");
        let again = cache.get_or_compile(b"keep;").expect("cached");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same script is compiled once"
        );
        cache.get_or_compile(b"discard;").expect("compiles");
        cache.get_or_compile(b"stop;").expect("compiles");
        assert_eq!(cache.len(), 2, "the bound holds");
        assert!(cache.get_or_compile(b"if {").is_err());
        assert_eq!(cache.len(), 2, "a script that does not compile is not kept");
        let none = ScriptCache::new(0);
        none.get_or_compile(b"keep;").expect("compiles");
        assert!(none.is_empty());
    }

    #[test]
    fn flags_map_to_keywords() {
        assert_eq!(keyword_of_flag("\\Seen").as_deref(), Some("$seen"));
        assert_eq!(keyword_of_flag("\\Deleted"), None);
        assert_eq!(keyword_of_flag("Bad Flag"), None);
        assert_eq!(keyword_of_flag("$Label1").as_deref(), Some("$label1"));
    }
}
