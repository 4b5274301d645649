//! `serve --demo`: two accounts whose passwords are printed once, and a team both belong to
//! (a group: a second account in each demo session, RFC 9670 sharing).

use crate::auth::{Directory, DirectoryErrorKind};

use super::{StartError, StartErrorKind};

/// The accounts `--demo` created on this start, with their one-time passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAccount {
    pub email: String,
    pub password: String,
}

pub const DEMO_EMAILS: [&str; 2] = ["alice@example.test", "bob@example.test"];

pub(super) async fn create_demo_accounts(
    directory: &Directory,
) -> Result<Vec<DemoAccount>, StartError> {
    let mut created = Vec::new();
    for email in DEMO_EMAILS {
        let password = crate::auth::password::generate();
        match directory.create_account(email, &password).await {
            Ok(_) => created.push(DemoAccount {
                email: email.to_owned(),
                password,
            }),
            Err(error) if error.kind == DirectoryErrorKind::AccountExists => {}
            Err(error) => {
                return Err(StartError::new(
                    StartErrorKind::Store,
                    format!("cannot create demo account {email}: {error}"),
                ));
            }
        }
    }
    // A team both demo users belong to: each session then has a second account (RFC 9670
    // sharing), for cross-account copies and conformance suites that need one.
    match directory.create_group(DEMO_GROUP, "Demo team").await {
        Ok(_) => {
            for email in DEMO_EMAILS {
                directory
                    .add_group_member(DEMO_GROUP, email)
                    .await
                    .map_err(|error| {
                        StartError::new(
                            StartErrorKind::Store,
                            format!("cannot add {email} to {DEMO_GROUP}: {error}"),
                        )
                    })?;
            }
        }
        Err(error) if error.kind == DirectoryErrorKind::AccountExists => {}
        Err(error) => {
            return Err(StartError::new(
                StartErrorKind::Store,
                format!("cannot create demo group {DEMO_GROUP}: {error}"),
            ));
        }
    }
    Ok(created)
}

/// The demo users' shared team account.
pub const DEMO_GROUP: &str = "team@example.test";
