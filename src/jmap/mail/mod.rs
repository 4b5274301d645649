//! RFC 8621 methods: one directory per object type, one file per method.

pub mod email;
pub mod email_submission;
pub mod identity;
pub mod mailbox;
pub mod search_snippet;
pub mod thread;
pub mod vacation;
