//! The one write path. Every change to an account — a JMAP method, an SMTP delivery, a
//! submission, a background task — goes through [`commit_account`], which writes in ONE
//! transaction:
//! - the data (whatever the caller's closure writes),
//! - one change-log entry per data type that changed, at the account's next commit version,
//! - the new state of every changed type, and the account version that push watches.
//!
//! Invariants:
//! - the account version only grows, by one per commit that changed something; reading it in
//!   every commit serializes an account's writers, which is what keeps the log gap-free (the
//!   account has a single primary, so this costs no cross-node contention);
//! - a type's state is the account version of the last commit that changed that type, so a
//!   state string is comparable and `changes_since` reads exactly the entries after it;
//! - nothing is acknowledged (and no push is sent) before the transaction committed: callers
//!   publish from the returned [`Committed`].

use std::collections::BTreeMap;

use super::keys::{
    ACCT_CHANGES, ACCT_CHANGES_FLOOR, ACCT_NEXT_ID, ACCT_TYPE_STATE, account_prefix,
    account_version, be_u64,
};
use super::{
    BoxFuture, KeyRange, RangeOptions, RetryBackoff, Store, StoreError, StoreResult, Transaction,
};

/// The JMAP data types that have a state string and a change log (RFC 8620 §1.6.3 / §5.2).
/// The discriminant is stored in keys: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DataType {
    Mailbox = 1,
    Thread = 2,
    Email = 3,
    EmailDelivery = 4,
    Identity = 5,
    EmailSubmission = 6,
    VacationResponse = 7,
    PushSubscription = 8,
    /// RFC 9425 (`mail::quota`).
    Quota = 9,
    /// RFC 9670 §3 (`jmap::share_notification`).
    ShareNotification = 10,
    /// RFC 9661 (`jmap::sieve`).
    SieveScript = 11,
    /// Reserved for tests of the generic machinery.
    Test = 0xF0,
}

impl DataType {
    pub const ALL: [DataType; 12] = [
        DataType::Mailbox,
        DataType::Thread,
        DataType::Email,
        DataType::EmailDelivery,
        DataType::Identity,
        DataType::EmailSubmission,
        DataType::VacationResponse,
        DataType::PushSubscription,
        DataType::Quota,
        DataType::ShareNotification,
        DataType::SieveScript,
        DataType::Test,
    ];

    /// The type name used in JMAP (state-change `changed` maps, method names).
    pub fn jmap_name(self) -> &'static str {
        match self {
            DataType::Mailbox => "Mailbox",
            DataType::Thread => "Thread",
            DataType::Email => "Email",
            DataType::EmailDelivery => "EmailDelivery",
            DataType::Identity => "Identity",
            DataType::EmailSubmission => "EmailSubmission",
            DataType::VacationResponse => "VacationResponse",
            DataType::PushSubscription => "PushSubscription",
            DataType::Quota => "Quota",
            DataType::ShareNotification => "ShareNotification",
            DataType::SieveScript => "SieveScript",
            DataType::Test => "Test",
        }
    }

    pub fn from_jmap_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|dt| dt.jmap_name() == name)
    }

    pub fn from_u8(code: u8) -> Option<DataType> {
        DataType::ALL.into_iter().find(|dt| *dt as u8 == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChangeKind {
    Created = 1,
    Updated = 2,
    Destroyed = 3,
}

impl ChangeKind {
    fn from_u8(code: u8) -> Option<ChangeKind> {
        match code {
            1 => Some(ChangeKind::Created),
            2 => Some(ChangeKind::Updated),
            3 => Some(ChangeKind::Destroyed),
            _ => None,
        }
    }

    /// What one commit (or a run of commits) amounts to for an id that changed twice.
    /// `None` means it left no trace: created and destroyed within the span.
    fn merge(earlier: ChangeKind, later: ChangeKind) -> Option<ChangeKind> {
        match (earlier, later) {
            (ChangeKind::Created, ChangeKind::Destroyed) => None,
            (ChangeKind::Created, _) => Some(ChangeKind::Created),
            (_, ChangeKind::Destroyed) => Some(ChangeKind::Destroyed),
            (ChangeKind::Destroyed, _) => Some(ChangeKind::Destroyed),
            (ChangeKind::Updated, _) => Some(ChangeKind::Updated),
        }
    }
}

/// What a commit changed, recorded by the writer as it writes; becomes the change log.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    by_type: BTreeMap<DataType, BTreeMap<u64, Option<ChangeKind>>>,
}

impl Changes {
    pub fn created(&mut self, data_type: DataType, id: u64) {
        self.record(data_type, id, ChangeKind::Created);
    }
    pub fn updated(&mut self, data_type: DataType, id: u64) {
        self.record(data_type, id, ChangeKind::Updated);
    }
    pub fn destroyed(&mut self, data_type: DataType, id: u64) {
        self.record(data_type, id, ChangeKind::Destroyed);
    }
    /// Marks a type changed without an id (e.g. a singleton or a derived count), so its state
    /// moves and clients refetch.
    pub fn touched(&mut self, data_type: DataType) {
        self.by_type.entry(data_type).or_default();
    }

    fn record(&mut self, data_type: DataType, id: u64, kind: ChangeKind) {
        let entry = self
            .by_type
            .entry(data_type)
            .or_default()
            .entry(id)
            .or_insert(Some(kind));
        if let Some(earlier) = *entry {
            *entry = ChangeKind::merge(earlier, kind);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    pub fn types(&self) -> impl Iterator<Item = DataType> + '_ {
        self.by_type.keys().copied()
    }
}

/// The outcome of a successful commit.
#[derive(Debug, Clone)]
pub struct Committed<T> {
    pub value: T,
    /// The account version after the commit (unchanged when nothing changed).
    pub version: u64,
    /// The types whose state is now `version`.
    pub changed: Vec<DataType>,
}

/// Runs `body` and commits its writes together with the change log, retrying the whole
/// closure on conflicts. `body` must be idempotent (see [`Store::transact`]) and must record
/// every object it creates, updates or destroys in the `Changes` it is given. A body that
/// decides not to write (a method error, say) returns its verdict as `T`; nothing it recorded
/// is logged only if it recorded nothing.
pub async fn commit_account<T, F>(
    store: &Store,
    account_id: u32,
    mut body: F,
) -> StoreResult<Committed<T>>
where
    T: Send,
    F: for<'t> FnMut(&'t mut dyn Transaction, &'t mut Changes) -> BoxFuture<'t, StoreResult<T>>
        + Send,
{
    let mut retry = RetryBackoff::default();
    loop {
        let mut changes = Changes::default();
        let mut admission = None;
        // One attempt at a time per account in this process (released before a backoff).
        let turn = match store.account_locks() {
            Some(locks) => Some(locks.lock(account_id).await),
            None => None,
        };
        let outcome = async {
            let mut tx = store.backend().begin().await?;
            // Fencing first (`ownership`): the owner record joins this transaction's reads,
            // so a node deposed before the commit cannot commit.
            if let Some(fence) = store.fence() {
                admission = Some(fence.admit(tx.as_mut(), account_id).await?);
            }
            let value = body(tx.as_mut(), &mut changes).await?;
            let (version, changed) = write_change_log(tx.as_mut(), account_id, &changes).await?;
            tx.commit().await?;
            Ok::<Committed<T>, StoreError>(Committed {
                value,
                version,
                changed,
            })
        }
        .await;
        drop(turn);
        if let (Some(fence), Some(admission), Ok(_)) = (store.fence(), admission, &outcome) {
            fence.committed(account_id, admission);
        }
        match outcome {
            Err(error) if retry.wait_before_retry(&error).await => continue,
            Ok(committed) => {
                if !committed.changed.is_empty() {
                    store.account_committed(account_id);
                    tracing::debug!(
                        account_id,
                        version = committed.version,
                        changed = ?committed.changed,
                        "committed"
                    );
                }
                return Ok(committed);
            }
            Err(error) => return Err(error),
        }
    }
}

async fn write_change_log(
    tx: &mut dyn Transaction,
    account_id: u32,
    changes: &Changes,
) -> StoreResult<(u64, Vec<DataType>)> {
    let version_key = account_version(account_id);
    let current = read_u64(tx, &version_key).await?;
    if changes.is_empty() {
        return Ok((current, Vec::new()));
    }
    let next = current + 1;
    tx.set(&version_key, &next.to_be_bytes())?;
    let mut changed = Vec::with_capacity(changes.by_type.len());
    for (&data_type, ids) in &changes.by_type {
        let mut entry = Vec::with_capacity(ids.len() * 9);
        for (&id, kind) in ids {
            // A created-then-destroyed id needs no entry, but the state still moves.
            if let Some(kind) = kind {
                entry.push(*kind as u8);
                entry.extend_from_slice(&id.to_be_bytes());
            }
        }
        tx.set(&change_key(account_id, data_type, next), &entry)?;
        tx.set(&type_state_key(account_id, data_type), &next.to_be_bytes())?;
        changed.push(data_type);
    }
    Ok((next, changed))
}

fn change_key(account_id: u32, data_type: DataType, version: u64) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_CHANGES)
        .u8(data_type as u8)
        .u64(version)
        .build()
}

fn type_state_key(account_id: u32, data_type: DataType) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_TYPE_STATE)
        .u8(data_type as u8)
        .build()
}

fn floor_key(account_id: u32, data_type: DataType) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_CHANGES_FLOOR)
        .u8(data_type as u8)
        .build()
}

async fn read_u64(tx: &mut dyn Transaction, key: &[u8]) -> StoreResult<u64> {
    match tx.get(key).await? {
        None => Ok(0),
        Some(bytes) => be_u64(&bytes)
            .ok_or_else(|| StoreError::corrupt(format!("expected a u64 under key {key:02x?}"))),
    }
}

/// The current state of `data_type` in the account: the version of its last change (0 when it
/// never changed).
pub async fn read_state(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
) -> StoreResult<u64> {
    read_u64(tx, &type_state_key(account_id, data_type)).await
}

/// The account's commit version (what push compares).
pub async fn read_account_version(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<u64> {
    read_u64(tx, &account_version(account_id)).await
}

/// Resolves after a later commit changes the account: how push learns of changes from any
/// writer, on this node or (with FoundationDB watches) on another. Read the states after it
/// fires; several commits may have happened in between.
pub fn watch_account(store: &Store, account_id: u32) -> BoxFuture<'static, StoreResult<()>> {
    store.watch(&account_version(account_id))
}

/// Every type's current state, for push (`StateChange.changed`).
pub async fn read_all_states(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Vec<(DataType, u64)>> {
    let prefix = account_prefix(account_id).u8(ACCT_TYPE_STATE).build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    let mut states = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let data_type = key.get(prefix.len()).copied().and_then(DataType::from_u8);
        if let (Some(data_type), Some(version)) = (data_type, be_u64(&value)) {
            states.push((data_type, version));
        }
    }
    Ok(states)
}

/// Allocates the next object id of `data_type` in the account (ids start at 1 and are never
/// reused, so a destroyed id never comes back to confuse a client's cache).
pub async fn allocate_id(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
) -> StoreResult<u64> {
    let key = account_prefix(account_id)
        .u8(ACCT_NEXT_ID)
        .u8(data_type as u8)
        .build();
    let next = read_u64(tx, &key).await? + 1;
    tx.set(&key, &next.to_be_bytes())?;
    Ok(next)
}

/// A point in one type's change log: every commit up to `version`, plus the first `within`
/// records of the next commit. States handed to clients are positions with `within == 0`;
/// `/changes` hands out an intermediate position when `maxChanges` cuts a large commit, so a
/// client can page through a commit of any size (RFC 8620 §5.2: never more than maxChanges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogPosition {
    pub version: u64,
    pub within: u32,
}

impl LogPosition {
    pub fn at(version: u64) -> LogPosition {
        LogPosition { version, within: 0 }
    }
}

/// The changes of one type between two positions, collapsed per id as RFC 8620 §5.2 asks: an
/// id appears in at most one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangesSince {
    pub old_state: LogPosition,
    pub new_state: LogPosition,
    pub has_more_changes: bool,
    pub created: Vec<u64>,
    pub updated: Vec<u64>,
    pub destroyed: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// RFC 8620 §5.2 `cannotCalculateChanges`: the state is unknown or older than the log.
    #[error("cannot calculate changes from this state")]
    CannotCalculate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One record of a change-log entry: 1 byte of kind, 8 bytes of id.
const RECORD_BYTES: usize = 9;

fn decode_records(value: &[u8]) -> StoreResult<Vec<(ChangeKind, u64)>> {
    if !value.len().is_multiple_of(RECORD_BYTES) {
        return Err(StoreError::corrupt("malformed change-log entry"));
    }
    value
        .chunks(RECORD_BYTES)
        .map(|record| {
            let kind = ChangeKind::from_u8(record[0])
                .ok_or_else(|| StoreError::corrupt("unknown change kind in change log"))?;
            Ok((kind, be_u64(&record[1..]).unwrap_or_default()))
        })
        .collect()
}

/// Reads the change log of `data_type` after `since`. `max_changes` bounds the number of ids
/// returned (0 = no bound); when it cuts, `new_state` is where the cut fell (possibly inside a
/// commit) and `has_more_changes` is set.
pub async fn changes_since(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    since: LogPosition,
    max_changes: usize,
) -> Result<ChangesSince, ChangesError> {
    let current = read_state(tx, account_id, data_type).await?;
    let floor = read_u64(tx, &floor_key(account_id, data_type)).await?;
    let from_the_future = since.version > current || (since.version == current && since.within > 0);
    if from_the_future || since.version < floor {
        return Err(ChangesError::CannotCalculate);
    }
    let mut result = ChangesSince {
        old_state: since,
        new_state: since,
        ..ChangesSince::default()
    };
    if since.version == current {
        return Ok(result);
    }
    let range = KeyRange {
        begin: change_key(account_id, data_type, since.version + 1),
        end: change_key(account_id, data_type, current + 1),
    };
    let entries = tx.get_range(&range, RangeOptions::default()).await?;
    let mut net: BTreeMap<u64, Option<ChangeKind>> = BTreeMap::new();
    // Ids in order of first appearance, so lists come out in change order.
    let mut order: Vec<u64> = Vec::new();
    'entries: for (entry_index, (key, value)) in entries.into_iter().enumerate() {
        let version = key
            .get(key.len().saturating_sub(8)..)
            .and_then(be_u64)
            .ok_or_else(|| StoreError::corrupt("change-log key without a version"))?;
        let records = decode_records(&value)?;
        let already_seen = if entry_index == 0 && since.within > 0 {
            // An intermediate position must point inside the very next commit.
            if version != since.version + 1 || since.within as usize >= records.len() {
                return Err(ChangesError::CannotCalculate);
            }
            since.within as usize
        } else {
            0
        };
        for (record_index, &(kind, id)) in records.iter().enumerate().skip(already_seen) {
            let is_new_id = !net.contains_key(&id);
            if max_changes > 0 && is_new_id && net.len() >= max_changes {
                result.has_more_changes = true;
                break 'entries;
            }
            match net.get_mut(&id) {
                None => {
                    net.insert(id, Some(kind));
                    order.push(id);
                }
                Some(slot) => {
                    if let Some(earlier) = *slot {
                        *slot = ChangeKind::merge(earlier, kind);
                    }
                }
            }
            result.new_state = LogPosition {
                version: version - 1,
                within: u32::try_from(record_index + 1).unwrap_or(u32::MAX),
            };
        }
        result.new_state = LogPosition::at(version);
    }
    if !result.has_more_changes {
        result.new_state = LogPosition::at(current);
    }
    for id in order {
        match net.get(&id).copied().flatten() {
            Some(ChangeKind::Created) => result.created.push(id),
            Some(ChangeKind::Updated) => result.updated.push(id),
            Some(ChangeKind::Destroyed) => result.destroyed.push(id),
            None => {}
        }
    }
    Ok(result)
}

/// Drops the change log of `data_type` before `keep_from` (exclusive floor): later requests
/// from older states get `cannotCalculateChanges`. Run by housekeeping, in its own commit.
pub async fn prune_changes(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    keep_from: u64,
) -> StoreResult<()> {
    let floor = read_u64(tx, &floor_key(account_id, data_type)).await?;
    if keep_from <= floor {
        return Ok(());
    }
    tx.clear_range(&KeyRange {
        begin: change_key(account_id, data_type, 0),
        end: change_key(account_id, data_type, keep_from),
    })?;
    tx.set(&floor_key(account_id, data_type), &keep_from.to_be_bytes())
}

/// The commit-path part of the backend test suite (`testsuite` runs it on every backend).
pub mod suite {
    use super::*;

    /// The suite also runs against a persistent FoundationDB cluster: start from an empty account.
    async fn reset_account(store: &Store, account_id: u32) {
        store
            .transact(|tx| {
                Box::pin(async move {
                    tx.clear_range(&KeyRange::prefix(&account_prefix(account_id).build()))
                })
            })
            .await
            .expect("reset account");
    }

    /// Commits with recorded changes bump the version and states; reads collapse per id.
    pub async fn change_log_round_trip(store: &Store) {
        let account_id = 9_001;
        reset_account(store, account_id).await;
        let empty = commit_account(store, account_id, |_tx, _changes| {
            Box::pin(async move { Ok(()) })
        })
        .await
        .expect("empty commit");
        assert_eq!(
            empty.version, 0,
            "a commit without changes must not move the version"
        );
        assert!(empty.changed.is_empty());

        let first = commit_account(store, account_id, |tx, changes| {
            Box::pin(async move {
                let id_a = allocate_id(tx, account_id, DataType::Test).await?;
                let id_b = allocate_id(tx, account_id, DataType::Test).await?;
                changes.created(DataType::Test, id_a);
                changes.created(DataType::Test, id_b);
                Ok((id_a, id_b))
            })
        })
        .await
        .expect("first commit");
        let (id_a, id_b) = first.value;
        assert_eq!((id_a, id_b), (1, 2));
        assert_eq!(first.version, 1);
        assert_eq!(first.changed, vec![DataType::Test]);

        let second = commit_account(store, account_id, |_tx, changes| {
            Box::pin(async move {
                changes.updated(DataType::Test, id_a);
                changes.destroyed(DataType::Test, id_b);
                changes.created(DataType::Test, 3);
                changes.destroyed(DataType::Test, 3);
                changes.touched(DataType::Mailbox);
                Ok(())
            })
        })
        .await
        .expect("second commit");
        assert_eq!(second.version, 2);

        let mut tx = store.backend().begin().await.expect("begin");
        let tx = tx.as_mut();
        assert_eq!(read_state(tx, account_id, DataType::Test).await.unwrap(), 2);
        assert_eq!(
            read_state(tx, account_id, DataType::Mailbox).await.unwrap(),
            2
        );
        assert_eq!(
            read_state(tx, account_id, DataType::Email).await.unwrap(),
            0
        );

        let all = changes_since(tx, account_id, DataType::Test, LogPosition::at(0), 0)
            .await
            .expect("changes from 0");
        // id_b was created and destroyed in the span: it leaves no trace.
        assert_eq!(all.created, vec![id_a]);
        assert!(all.updated.is_empty() && all.destroyed.is_empty());
        assert_eq!(
            (all.old_state, all.new_state),
            (LogPosition::at(0), LogPosition::at(2))
        );
        assert!(!all.has_more_changes);

        let later = changes_since(tx, account_id, DataType::Test, LogPosition::at(1), 0)
            .await
            .expect("changes from 1");
        assert_eq!(later.updated, vec![id_a]);
        assert_eq!(later.destroyed, vec![id_b]);

        // maxChanges 1 cuts inside the first commit (two ids): an intermediate position.
        let capped = changes_since(tx, account_id, DataType::Test, LogPosition::at(0), 1)
            .await
            .expect("capped");
        let inside_first = LogPosition {
            version: 0,
            within: 1,
        };
        assert_eq!(capped.new_state, inside_first);
        assert!(capped.has_more_changes);
        assert_eq!(capped.created, vec![id_a]);
        // From there: the rest of commit 1 (id_b created) and commit 2 (id_a updated, id_b
        // destroyed) net to one update.
        let rest = changes_since(tx, account_id, DataType::Test, inside_first, 0)
            .await
            .expect("rest");
        assert_eq!(rest.updated, vec![id_a]);
        assert!(rest.created.is_empty() && rest.destroyed.is_empty());
        assert_eq!(rest.new_state, LogPosition::at(2));
        // Paging one id at a time ends at the current state.
        let mut position = LogPosition::at(0);
        let mut pages = 0;
        loop {
            let page = changes_since(tx, account_id, DataType::Test, position, 1)
                .await
                .expect("page");
            assert!(page.created.len() + page.updated.len() + page.destroyed.len() <= 1);
            position = page.new_state;
            pages += 1;
            if !page.has_more_changes {
                break;
            }
            assert!(pages < 10, "paging does not progress");
        }
        assert_eq!(position, LogPosition::at(2));
        let beyond_first = LogPosition {
            version: 0,
            within: 2,
        };
        assert!(matches!(
            changes_since(tx, account_id, DataType::Test, beyond_first, 0).await,
            Err(ChangesError::CannotCalculate)
        ));

        assert!(matches!(
            changes_since(tx, account_id, DataType::Test, LogPosition::at(7), 0).await,
            Err(ChangesError::CannotCalculate)
        ));
    }

    /// Pruning moves the floor: older states can no longer be served.
    pub async fn change_log_pruning(store: &Store) {
        let account_id = 9_002;
        reset_account(store, account_id).await;
        for _ in 0..3 {
            commit_account(store, account_id, |tx, changes| {
                Box::pin(async move {
                    let id = allocate_id(tx, account_id, DataType::Test).await?;
                    changes.created(DataType::Test, id);
                    Ok(())
                })
            })
            .await
            .expect("commit");
        }
        store
            .transact(|tx| {
                Box::pin(async move { prune_changes(tx, account_id, DataType::Test, 2).await })
            })
            .await
            .expect("prune");
        let mut tx = store.backend().begin().await.expect("begin");
        let tx = tx.as_mut();
        assert!(matches!(
            changes_since(tx, account_id, DataType::Test, LogPosition::at(1), 0).await,
            Err(ChangesError::CannotCalculate)
        ));
        let kept = changes_since(tx, account_id, DataType::Test, LogPosition::at(2), 0)
            .await
            .expect("from the floor");
        assert_eq!(kept.created, vec![3]);
    }

    /// A watch on the account fires after a commit that changed it, and not for another
    /// account's commit or a commit without changes.
    pub async fn account_watch_fires_after_commit(store: &Store) {
        let account_id = 9_004;
        let other_account_id = 9_005;
        reset_account(store, account_id).await;
        let watch = watch_account(store, account_id);
        let watch = tokio::spawn(watch);
        commit_account(store, other_account_id, |_tx, changes| {
            Box::pin(async move {
                changes.created(DataType::Test, 1);
                Ok(())
            })
        })
        .await
        .expect("other account commit");
        commit_account(store, account_id, |_tx, _changes| {
            Box::pin(async move { Ok(()) })
        })
        .await
        .expect("empty commit");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !watch.is_finished(),
            "watch fired without a change to its account"
        );
        commit_account(store, account_id, |_tx, changes| {
            Box::pin(async move {
                changes.created(DataType::Test, 1);
                Ok(())
            })
        })
        .await
        .expect("commit");
        tokio::time::timeout(std::time::Duration::from_secs(5), watch)
            .await
            .expect("watch fired in time")
            .expect("join")
            .expect("watch ok");
    }

    /// Concurrent commits to one account serialize: every version is used exactly once.
    pub async fn concurrent_commits_serialize(store: &Store) {
        let account_id = 9_003;
        reset_account(store, account_id).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                commit_account(&store, account_id, |tx, changes| {
                    Box::pin(async move {
                        let id = allocate_id(tx, account_id, DataType::Test).await?;
                        changes.created(DataType::Test, id);
                        Ok(id)
                    })
                })
                .await
                .expect("commit")
            }));
        }
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.expect("join").version);
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
        let mut tx = store.backend().begin().await.expect("begin");
        let all = changes_since(
            tx.as_mut(),
            account_id,
            DataType::Test,
            LogPosition::at(0),
            0,
        )
        .await
        .expect("changes");
        assert_eq!(all.created.len(), 8);
    }
}
