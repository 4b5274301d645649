//! Directory and authenticator tests against the real embedded store.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use super::*;
use crate::store::Store;
use crate::store::embedded::EmbeddedBackend;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn open_store(dir: &std::path::Path) -> Store {
    Store::new(Arc::new(EmbeddedBackend::open(dir).expect("open store")))
}

fn basic(email: &str, password: &str) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    format!("Basic {encoded}").into_bytes()
}

#[tokio::test]
async fn account_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let directory = Directory::new(store.clone());
    let alice = directory
        .create_account("Alice@Example.test", "pw-alice")
        .await
        .unwrap();
    assert_eq!(alice.email, "alice@example.test");
    // Something of alice's in the store, for the purge to remove.
    crate::store::commit::commit_account(&store, alice.account_id, |_tx, changes| {
        Box::pin(async move {
            changes.created(crate::store::commit::DataType::Test, 1);
            Ok(())
        })
    })
    .await
    .unwrap();
    let bob = directory
        .create_account("bob@example.test", "pw-bob")
        .await
        .unwrap();
    assert_ne!(alice.account_id, bob.account_id);

    let duplicate = directory
        .create_account("ALICE@example.test", "x")
        .await
        .unwrap_err();
    assert_eq!(duplicate.kind, DirectoryErrorKind::AccountExists);

    let listed = directory.list_accounts().await.unwrap();
    assert_eq!(listed, vec![alice.clone(), bob.clone()]);

    directory
        .delete_account("alice@example.test")
        .await
        .unwrap();
    let missing = directory.account("alice@example.test").await.unwrap_err();
    assert_eq!(missing.kind, DirectoryErrorKind::UnknownAccount);
    // Deleting the account purged its data and left no pending purge.
    let account_range = crate::store::KeyRange::prefix(
        &crate::store::keys::account_prefix(alice.account_id).build(),
    );
    let left = store
        .read(|tx| {
            Box::pin(async move {
                tx.get_range(&account_range, crate::store::RangeOptions::default())
                    .await
            })
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "account data left after delete");
    // Its owner record is retired: no node can ever commit for it again (cluster fencing).
    let account_id = alice.account_id;
    let owner = store
        .read(|tx| Box::pin(crate::store::ownership::read_owner(tx, account_id)))
        .await
        .unwrap();
    assert!(owner.is_retired(), "{owner:?}");
    assert!(
        crate::store::purge::pending_purges(&store)
            .await
            .unwrap()
            .is_empty()
    );
    let missing = directory
        .delete_account("alice@example.test")
        .await
        .unwrap_err();
    assert_eq!(missing.kind, DirectoryErrorKind::UnknownAccount);

    // Ids are never reused: nothing a client cached of the old account can name the new one.
    let again = directory
        .create_account("alice@example.test", "pw")
        .await
        .unwrap();
    assert!(again.account_id > bob.account_id);
}

#[tokio::test]
async fn passwords_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::new(open_store(dir.path()));
    let alice = directory
        .create_account("alice@example.test", "first")
        .await
        .unwrap();
    let principal = directory
        .verify_password("alice@example.test", "first")
        .await
        .unwrap();
    assert_eq!(principal, Some(alice.principal()));
    assert_eq!(
        directory
            .verify_password("alice@example.test", "wrong")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        directory
            .verify_password("nobody@example.test", "first")
            .await
            .unwrap(),
        None
    );

    directory
        .set_password("alice@example.test", "second")
        .await
        .unwrap();
    assert_eq!(
        directory
            .verify_password("alice@example.test", "first")
            .await
            .unwrap(),
        None
    );
    let unknown = directory
        .set_password("nobody@example.test", "x")
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, DirectoryErrorKind::UnknownAccount);
    let empty = directory
        .set_password("alice@example.test", "")
        .await
        .unwrap_err();
    assert_eq!(empty.kind, DirectoryErrorKind::InvalidPassword);

    let token = directory.create_token("alice@example.test").await.unwrap();
    assert!(token.starts_with("tern_") && token.len() > 40);
    assert_eq!(
        directory.principal_for_token(&token).await.unwrap(),
        Some(alice.principal())
    );
    assert_eq!(
        directory.principal_for_token("tern_nope").await.unwrap(),
        None
    );
    directory
        .delete_account("alice@example.test")
        .await
        .unwrap();
    assert_eq!(directory.principal_for_token(&token).await.unwrap(), None);
}

#[tokio::test]
async fn authenticator_accepts_basic_and_bearer_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::new(open_store(dir.path()));
    let alice = directory
        .create_account("alice@example.test", "secret")
        .await
        .unwrap();
    let token = directory.create_token("alice@example.test").await.unwrap();
    let authenticator = Authenticator::new(directory.clone(), 3, Duration::from_secs(60));

    let good = basic("alice@example.test", "secret");
    assert_eq!(
        authenticator.authenticate(Some(&good), CLIENT).await,
        Ok(alice.principal())
    );
    let bearer = format!("Bearer {token}").into_bytes();
    assert_eq!(
        authenticator.authenticate(Some(&bearer), CLIENT).await,
        Ok(alice.principal())
    );
    assert_eq!(
        authenticator.authenticate(None, CLIENT).await,
        Err(AuthError::Missing)
    );
    for bad in [
        basic("alice@example.test", "wrong"),
        b"Basic !!!notbase64".to_vec(),
        b"Digest abc".to_vec(),
    ] {
        assert_eq!(
            authenticator.authenticate(Some(&bad), CLIENT).await,
            Err(AuthError::Invalid)
        );
    }
    // Three failures used the burst; with a 60 s refill (over the 10 s max delay) other
    // logins from this address are refused at once, without verification ...
    let other_user = basic("mallory@example.test", "guess");
    assert!(matches!(
        authenticator.authenticate(Some(&other_user), CLIENT).await,
        Err(AuthError::RateLimited {
            scope: rate_limit::Scope::Address,
            ..
        })
    ));
    // ... but alice, who logged in from here before, is still verified (shared NAT), and
    // her cached login works.
    let fresh = basic("alice@example.test", "other");
    assert_eq!(
        authenticator.authenticate(Some(&fresh), CLIENT).await,
        Err(AuthError::Invalid)
    );
    assert_eq!(
        authenticator.authenticate(Some(&good), CLIENT).await,
        Ok(alice.principal())
    );
    let elsewhere = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(
        authenticator
            .authenticate(Some(&other_user), elsewhere)
            .await,
        Err(AuthError::Invalid)
    );
}

#[tokio::test]
async fn password_change_invalidates_cached_logins() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::new(open_store(dir.path()));
    directory
        .create_account("alice@example.test", "old")
        .await
        .unwrap();
    let authenticator = Authenticator::new(directory.clone(), 10, Duration::from_secs(1));
    let old = basic("alice@example.test", "old");
    assert!(authenticator.authenticate(Some(&old), CLIENT).await.is_ok());
    directory
        .set_password("alice@example.test", "new")
        .await
        .unwrap();
    assert_eq!(
        authenticator.authenticate(Some(&old), CLIENT).await,
        Err(AuthError::Invalid)
    );
    let new = basic("alice@example.test", "new");
    assert!(authenticator.authenticate(Some(&new), CLIENT).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_logins_verify_once() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::new(open_store(dir.path()));
    let alice = directory
        .create_account("alice@example.test", "secret")
        .await
        .unwrap();
    let authenticator = Arc::new(Authenticator::new(directory, 10, Duration::from_secs(60)));
    let header = basic("alice@example.test", "secret");
    let started = std::time::Instant::now();
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let authenticator = Arc::clone(&authenticator);
            let header = header.clone();
            tokio::spawn(async move { authenticator.authenticate(Some(&header), CLIENT).await })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.unwrap(), Ok(alice.principal()));
    }
    let all_logins = started.elapsed();
    // Without single flight, 16 verifications take several verification times (and 16
    // reservations would use up the address's burst of 10).
    let decoy = super::password::decoy_hash();
    let single = {
        let started = std::time::Instant::now();
        let _ = super::password::verify("secret", decoy);
        started.elapsed()
    };
    assert!(
        all_logins < single * 5,
        "{all_logins:?} vs one verification {single:?}"
    );
}

/// Two servers on one store (the CLI on FoundationDB, or another node): a password changed or
/// an account deleted through one stops working through the other at once, not when the
/// other's cached check expires.
#[tokio::test]
async fn credential_changes_in_another_process_clear_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let elsewhere = Directory::new(store.clone());
    let here = Directory::new(store.clone());
    let (stop, stop_receiver) = tokio::sync::watch::channel(false);
    let forgetting = tokio::spawn({
        let here = here.clone();
        async move { here.forget_on_credential_changes(stop_receiver).await }
    });
    let authenticator = Authenticator::new(here.clone(), 100, Duration::from_secs(1));
    elsewhere
        .create_account("carol@example.test", "old-pw")
        .await
        .unwrap();
    elsewhere
        .create_account("dave@example.test", "dave-pw")
        .await
        .unwrap();
    let carol = basic("carol@example.test", "old-pw");
    let dave = basic("dave@example.test", "dave-pw");
    let accepted = |header: Vec<u8>| {
        let authenticator = &authenticator;
        async move {
            authenticator
                .authenticate(Some(&header), CLIENT)
                .await
                .is_ok()
        }
    };
    // Checked once here: cached from now on.
    assert!(accepted(carol.clone()).await && accepted(dave.clone()).await);
    let cached = |header: &[u8]| {
        let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(header).into();
        here.credential_cache().get(&key).is_some()
    };
    assert!(cached(&carol) && cached(&dave));

    elsewhere
        .set_password("carol@example.test", "new-pw")
        .await
        .unwrap();
    wait_until(|| !cached(&carol)).await;
    assert!(!accepted(carol.clone()).await);
    assert!(accepted(basic("carol@example.test", "new-pw")).await);

    assert!(accepted(dave.clone()).await);
    elsewhere.delete_account("dave@example.test").await.unwrap();
    wait_until(|| !cached(&dave)).await;
    assert!(!accepted(dave).await);

    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), forgetting)
        .await
        .expect("the watcher stops")
        .expect("no panic");
}

async fn wait_until(condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("in time");
}
