//! The mail domain, apart from JMAP's wire format: parsing messages (`parsed`), building them
//! (`build`), mailboxes (`mailbox`), and the Email store with its threads, indexes and exact
//! counters (`store`, `counters`). JMAP methods (`jmap::mail`), SMTP delivery and submission
//! all write mail through `store`, inside `commit_account`.

pub mod build;
pub mod counters;
pub mod followup;
pub mod mailbox;
pub mod mdn;
pub mod parsed;
pub mod quota;
pub mod sharing;
pub mod sieve;
pub mod store;
pub mod submission;
