//! Accounts, credentials and authentication (the directory).

/// An authenticated user. Every JMAP call runs on behalf of one; an account is reachable only
/// through `Principal::may_access`, checked once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's own account (RFC 8620 §1.6.2: one account per user for now).
    pub account_id: u32,
    /// The login name, an email address.
    pub email: String,
}

impl Principal {
    pub fn may_access(&self, account_id: u32) -> bool {
        self.account_id == account_id
    }
}
