//! Short-lived tickets for browsers, which cannot set an `Authorization` header on a
//! WebSocket or EventSource: an authenticated `POST /jmap/ticket` returns a random ticket,
//! and `?ticket=...` on the WebSocket or EventSource URL stands for the credentials once,
//! within [`TICKET_LIFETIME`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;

use crate::auth::Principal;

/// Long enough to open a socket right after asking, short enough that a leaked URL (logs,
/// history) is useless.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60);

/// Bounds memory if a client asks for tickets without using them.
const MAX_OUTSTANDING: usize = 100_000;

#[derive(Default)]
pub struct TicketStore {
    tickets: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl TicketStore {
    pub fn new() -> TicketStore {
        TicketStore::default()
    }

    /// A new single-use ticket for `principal`.
    pub fn issue(&self, principal: &Principal) -> String {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        tickets.retain(|_, (_, expires)| *expires > now);
        if tickets.len() >= MAX_OUTSTANDING {
            // The oldest go first; a legitimate client asks right before connecting.
            let mut by_age: Vec<(String, Instant)> = tickets
                .iter()
                .map(|(key, (_, expires))| (key.clone(), *expires))
                .collect();
            by_age.sort_unstable_by_key(|(_, expires)| *expires);
            for (key, _) in by_age.into_iter().take(MAX_OUTSTANDING / 10) {
                tickets.remove(&key);
            }
        }
        tickets.insert(ticket.clone(), (principal.clone(), now + TICKET_LIFETIME));
        ticket
    }

    /// The principal of a valid ticket, consuming it.
    pub fn redeem(&self, ticket: &str) -> Option<Principal> {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let (principal, expires) = tickets.remove(ticket)?;
        (expires > Instant::now()).then_some(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once() {
        let store = TicketStore::new();
        let principal = Principal {
            account_id: 4,
            email: "d@example.test".to_owned(),
        };
        let ticket = store.issue(&principal);
        assert_eq!(store.redeem("nope"), None);
        assert_eq!(store.redeem(&ticket), Some(principal));
        assert_eq!(store.redeem(&ticket), None, "tickets are single-use");
    }
}
