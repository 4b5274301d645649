//! Mailbox (RFC 8621 §2) on the generic methods: the stored document is
//! `mail::mailbox::Mailbox`; the counts come from `mail::counters` and `myRights` from the
//! owner's rights, both added when the object is read.
//!
//! The method arguments that change how the generic machinery behaves (`onDestroyRemoveEmails`
//! of /set, `sortAsTree` and `filterAsTree` of /query) select an instantiation of
//! [`MailboxType`] through its const parameters, so the generic methods run unchanged.

pub mod changes;
pub mod get;
mod properties;
pub mod query;
pub mod query_changes;
mod search;
pub mod set;
pub mod sharing;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use crate::auth::directory::account_email_in;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::error::{MethodError, SetError, SetErrorType};
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope};
use crate::mail::counters::{self, MailboxCounts};
use crate::mail::mailbox::tree::Mailboxes;
use crate::mail::mailbox::{self as store, MAX_MAILBOXES_PER_ACCOUNT, Mailbox};
use crate::mail::sharing::SharedView;
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::{StoreResult, Transaction};

/// Mailbox ids start with this letter (`Id::from_number`).
pub const ID_PREFIX: char = 'm';

/// The four count properties: the only ones an Email change moves (RFC 8621 §2.2
/// `updatedProperties`).
pub const COUNT_PROPERTIES: [&str; 4] = [
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
];

/// The Mailbox object type. `REMOVE_EMAILS` is /set's `onDestroyRemoveEmails`; `SORT_AS_TREE`
/// and `FILTER_AS_TREE` are /query's `sortAsTree` and `filterAsTree` (RFC 8621 §2.3, §2.5).
pub struct MailboxType<
    const REMOVE_EMAILS: bool,
    const SORT_AS_TREE: bool,
    const FILTER_AS_TREE: bool,
>;

/// The plain Mailbox type: every argument at its default.
pub type MailboxObject = MailboxType<false, false, false>;

/// Creates the default Mailboxes of an account that predates them (RFC 8621 §2: every account
/// has them), before a Mailbox method reads. An `accountId` that is missing, malformed or not
/// the caller's is left for the method to refuse.
pub async fn ensure_defaults(
    context: &CallContext<'_>,
    arguments: Arguments,
) -> Result<Arguments, MethodError> {
    let members = arguments.into_inner();
    if let Some(account) = context.own_account_argument(&members) {
        store::ensure_default_mailboxes(&context.engine.store, account.number()).await?;
    }
    Ok(Arguments::new(members))
}

/// RFC 8621 §2 `myRights` of the account's owner: everything, except that the inbox cannot be
/// deleted (mail delivery needs it).
pub fn my_rights(mailbox: &Mailbox) -> Value {
    let is_inbox = mailbox.role.as_deref() == Some("inbox");
    json!({
        "mayReadItems": true,
        "mayAddItems": true,
        "mayRemoveItems": true,
        "maySetSeen": true,
        "maySetKeywords": true,
        "mayCreateChild": true,
        "mayRename": true,
        "mayDelete": !is_inbox,
        "maySubmit": true,
    })
}

pub fn mailbox_id_json(mailbox_id: u64) -> Value {
    Value::String(crate::jmap::types::Id::from_number(ID_PREFIX, mailbox_id).into_string())
}

/// The JMAP form of a Mailbox, without `id`.
pub fn to_json(mailbox: &Mailbox, counts: MailboxCounts) -> Map<String, Value> {
    let mut object = Map::with_capacity(10);
    object.insert("name".to_owned(), Value::from(mailbox.name.as_str()));
    object.insert(
        "parentId".to_owned(),
        mailbox.parent_id.map_or(Value::Null, mailbox_id_json),
    );
    object.insert(
        "role".to_owned(),
        mailbox.role.as_deref().map_or(Value::Null, Value::from),
    );
    object.insert("sortOrder".to_owned(), Value::from(mailbox.sort_order));
    object.insert("totalEmails".to_owned(), Value::from(counts.total_emails));
    object.insert("unreadEmails".to_owned(), Value::from(counts.unread_emails));
    object.insert("totalThreads".to_owned(), Value::from(counts.total_threads));
    object.insert(
        "unreadThreads".to_owned(),
        Value::from(counts.unread_threads),
    );
    object.insert("myRights".to_owned(), my_rights(mailbox));
    object.insert(
        "isSubscribed".to_owned(),
        Value::Bool(mailbox.is_subscribed),
    );
    object.insert("shareWith".to_owned(), sharing::share_with_json(mailbox));
    object
}

/// RFC 9670: every principal newly granted something exists and is not the owner.
async fn check_grantees(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox: &Mailbox,
    previous: Option<&Mailbox>,
) -> StoreResult<Result<(), SetError>> {
    for principal_id in mailbox.share_with.keys() {
        if previous.is_some_and(|previous| previous.share_with.contains_key(principal_id)) {
            continue;
        }
        let exists = *principal_id != account_id
            && account_email_in(tx, *principal_id)
                .await
                .map_err(|error| crate::store::StoreError::io(error.to_string()))?
                .is_some();
        if !exists {
            return Ok(Err(SetError::invalid_properties(
                ["shareWith"],
                format!(
                    "no principal {} to share with",
                    crate::jmap::types::AccountId::new(*principal_id)
                ),
            )));
        }
    }
    Ok(Ok(()))
}

/// A grant changed (`mail::sharing`): the grantee index follows in this transaction; the
/// Mailbox and its ancestors (shown or hidden with it) are updated for the grantees, and the
/// Email and Thread states move so their clients ask, and resynchronize.
async fn grants_changed(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    before: &Mailboxes,
    after: &Mailboxes,
    id: u64,
) -> StoreResult<()> {
    crate::mail::sharing::sync_index(tx, account_id, before, after).await?;
    sharing::queue_notices(tx, account_id, before, after, id).await?;
    for ancestor in crate::mail::mailbox::tree::ancestors(before, id) {
        changes.updated(DataType::Mailbox, ancestor);
    }
    changes.touched(DataType::Email);
    changes.touched(DataType::Thread);
    store::record_properties_changed(tx, account_id).await
}

impl<const REMOVE_EMAILS: bool, const SORT_AS_TREE: bool, const FILTER_AS_TREE: bool> ObjectType
    for MailboxType<REMOVE_EMAILS, SORT_AS_TREE, FILTER_AS_TREE>
{
    const DATA_TYPE: DataType = DataType::Mailbox;
    const ID_PREFIX: char = ID_PREFIX;
    const PROPERTIES: &'static [&'static str] = &[
        "id",
        "name",
        "parentId",
        "role",
        "sortOrder",
        "totalEmails",
        "unreadEmails",
        "totalThreads",
        "unreadThreads",
        "myRights",
        "isSubscribed",
        "shareWith",
    ];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &[
        "totalEmails",
        "unreadEmails",
        "totalThreads",
        "unreadThreads",
        "myRights",
    ];

    /// Updates that clear a role run first, so a role can move from one Mailbox to another
    /// in one /set (RFC 8621 §2: one Mailbox per role, checked as each update runs).
    fn order_updates(updates: &mut [(String, Value)]) {
        updates.sort_by_key(|(_, patch)| patch.get("role") != Some(&Value::Null));
    }

    /// RFC 8620 §5.3: a patch to null resets a property to its default (RFC 8621 §2).
    fn default_value(property: &str) -> Option<Value> {
        Some(match property {
            "sortOrder" => Value::from(0),
            "isSubscribed" => Value::Bool(true),
            _ => Value::Null,
        })
    }

    fn shared_object(view: &SharedView, id: u64, object: Map<String, Value>) -> Map<String, Value> {
        sharing::present(view, id, object)
    }

    async fn list_ids(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Vec<u64>> {
        Ok(store::load_all(tx, account_id).await?.into_keys().collect())
    }

    async fn load(
        tx: &mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> StoreResult<Option<Map<String, Value>>> {
        let Some(mailbox) = store::load(tx, account_id, id).await? else {
            return Ok(None);
        };
        let counts = counters::read(tx, account_id, id).await?;
        Ok(Some(to_json(&mailbox, counts)))
    }

    async fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        let account_id = scope.account_id;
        let all = store::load_all(tx, account_id).await?;
        if all.len() >= MAX_MAILBOXES_PER_ACCOUNT {
            return Ok(Err(SetError::with_description(
                SetErrorType::OverQuota,
                format!("an account holds at most {MAX_MAILBOXES_PER_ACCOUNT} Mailboxes"),
            )));
        }
        let (mut mailbox, reported) = match properties::for_create(&object, scope, &all) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(error)),
        };
        if let Some(viewer) = scope.viewer
            && let Err(error) =
                sharing::check_create(&SharedView::of_account(account_id, &all, viewer), &mailbox)
        {
            return Ok(Err(error));
        }
        // No grants given (jmap-client sends `{}`): the parent's apply.
        if mailbox.share_with.is_empty() {
            mailbox.share_with = sharing::inherited_grants(&all, mailbox.parent_id);
        } else if let Err(error) = check_grantees(tx, account_id, &mailbox, None).await? {
            return Ok(Err(error));
        }
        let id = allocate_id(tx, account_id, DataType::Mailbox).await?;
        store::save(tx, account_id, id, &mailbox, None)?;
        changes.created(DataType::Mailbox, id);
        if !mailbox.share_with.is_empty() {
            let mut after = all.clone();
            after.insert(id, mailbox.clone());
            grants_changed(tx, changes, account_id, &all, &after, id).await?;
        }
        let mut server_set = reported;
        for (property, value) in to_json(&mailbox, MailboxCounts::default()) {
            // RFC 8620 §5.3: report what the server set, and the defaults of what the
            // client omitted.
            if !object.contains_key(&property) {
                server_set.insert(property, value);
            }
        }
        Ok(Ok(Created { id, server_set }))
    }

    async fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        shown: Map<String, Value>,
        patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        let account_id = scope.account_id;
        let all = store::load_all(tx, account_id).await?;
        let Some(current) = all.get(&id) else {
            return Ok(Err(SetError::not_found()));
        };
        // A grantee patched their view: what they changed applies to the Mailbox, or to their
        // own subscription.
        let mut unsubscribed = current.unsubscribed.clone();
        let patched = match scope.viewer {
            Some(viewer) => {
                match sharing::grantee_patch(viewer.principal_id, current, &shown, &patched) {
                    Ok((owner_view, grantee_unsubscribed)) => {
                        unsubscribed = grantee_unsubscribed;
                        owner_view
                    }
                    Err(error) => return Ok(Err(error)),
                }
            }
            None => patched,
        };
        let (mut updated, reported) = match properties::for_update(&patched, scope, &all, id) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(error)),
        };
        updated.unsubscribed = unsubscribed;
        if let Some(viewer) = scope.viewer
            && let Err(error) = sharing::check_update(
                &SharedView::of_account(account_id, &all, viewer),
                id,
                current,
                &updated,
            )
        {
            return Ok(Err(error));
        }
        if let Err(error) = check_grantees(tx, account_id, &updated, Some(current)).await? {
            return Ok(Err(error));
        }
        if updated.share_with != current.share_with {
            let mut after = all.clone();
            after.insert(id, updated.clone());
            grants_changed(tx, changes, account_id, &all, &after, id).await?;
        }
        if &updated != current {
            let is_trash = |mailbox: &Mailbox| mailbox.role.as_deref() == Some("trash");
            if is_trash(current) != is_trash(&updated) {
                // The role is unique, so the trash was this Mailbox or there was none.
                let old_trash = is_trash(current).then_some(id);
                let new_trash = is_trash(&updated).then_some(id);
                store::move_trash_role(tx, changes, account_id, old_trash, new_trash).await?;
            }
            store::save(tx, account_id, id, &updated, Some(current))?;
            changes.updated(DataType::Mailbox, id);
            store::record_properties_changed(tx, account_id).await?;
        }
        Ok(Ok((!reported.is_empty()).then_some(reported)))
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        let account_id = scope.account_id;
        let all = store::load_all(tx, account_id).await?;
        let Some(mailbox) = all.get(&id) else {
            return Ok(Err(SetError::not_found()));
        };
        if let Some(viewer) = scope.viewer
            && let Err(error) = sharing::check_destroy(
                &SharedView::of_account(account_id, &all, viewer),
                id,
                REMOVE_EMAILS,
            )
        {
            return Ok(Err(error));
        }
        if my_rights(mailbox)["mayDelete"] != Value::Bool(true) {
            return Ok(Err(SetError::with_description(
                SetErrorType::Forbidden,
                "the inbox cannot be destroyed",
            )));
        }
        // RFC 8621 §2.5: a Mailbox with children cannot be destroyed.
        if all.values().any(|other| other.parent_id == Some(id)) {
            return Ok(Err(SetError::with_description(
                SetErrorType::MailboxHasChild,
                "the Mailbox has child Mailboxes",
            )));
        }
        let counts = counters::read(tx, account_id, id).await?;
        if counts.total_emails > 0 {
            // RFC 8621 §2.5: without onDestroyRemoveEmails, a Mailbox with Emails stays.
            if !REMOVE_EMAILS {
                return Ok(Err(SetError::with_description(
                    SetErrorType::MailboxHasEmail,
                    format!("the Mailbox holds {} Emails", counts.total_emails),
                )));
            }
            crate::mail::store::remove_mailbox_from_emails(tx, changes, account_id, id).await?;
        }
        store::remove(tx, account_id, id, mailbox)?;
        changes.destroyed(DataType::Mailbox, id);
        if !mailbox.share_with.is_empty() {
            let mut after = all.clone();
            after.remove(&id);
            grants_changed(tx, changes, account_id, &all, &after, id).await?;
        }
        Ok(Ok(()))
    }

    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        let all = store::load_all(tx, account_id).await?;
        Ok(search::run(
            &all,
            filter,
            sort,
            SORT_AS_TREE,
            FILTER_AS_TREE,
        ))
    }
}
