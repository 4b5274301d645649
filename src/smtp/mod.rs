//! SMTP: the listeners that receive mail (MX on port 25/2525, submission on 587/465), the
//! sans-IO session state machine they drive, the acceptance policy, and the durable incoming
//! queue that hands accepted messages to the delivery actor. Queue layout: `schema/smtp.md`.

pub mod antivirus;
pub mod config;
pub mod delivery;
pub mod incoming;
pub mod listener;
pub mod policy;
pub mod quarantine;
pub mod session;
pub mod spam;
pub mod vacation;
