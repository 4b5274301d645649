//! `tern index rebuild [--account EMAIL]`: re-derives accounts' documents from the store.
//!
//! A rebuild is only store writes (`queue::rebuild_account`): the account is marked rebuilding
//! (text queries scan its Emails meanwhile, so they stay exact), a reset task and one index
//! task per Email are queued, then the mark is cleared. The indexer of the running server does
//! the rest; on a stopped data directory the next start does. Safe to run twice.

use crate::auth::{AccountInfo, Directory, DirectoryError};

use super::queue;

/// Queues the rebuild of one account (`email`) or of every account; returns each account with
/// the number of Emails queued.
pub async fn rebuild(
    directory: &Directory,
    email: Option<&str>,
) -> Result<Vec<(AccountInfo, usize)>, DirectoryError> {
    let accounts = match email {
        Some(email) => vec![directory.account(email).await?],
        None => directory.list_accounts().await?,
    };
    let mut queued = Vec::with_capacity(accounts.len());
    for account in accounts {
        let emails = queue::rebuild_account(directory.store(), account.account_id).await?;
        tracing::info!(
            account_id = account.account_id,
            emails,
            "search index rebuild queued"
        );
        queued.push((account, emails));
    }
    Ok(queued)
}
