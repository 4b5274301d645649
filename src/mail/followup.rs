//! Follow-up tasks born in the transaction of a mail change: what the actors above `mail/`
//! (the search indexer, the spam trainer) must do about it. Only the writers live here, below
//! `mail/store.rs`, so that the write path never imports an actor; each actor reads and clears
//! its own queue.

pub mod search;
pub mod training;
