//! Backend suite test of the stored Email metadata (run on every backend by
//! `store::testsuite`): the binary form written now and the JSON form of earlier versions both
//! load through `mail::store::load_parsed`, also when chunked (over 100 KB).

use super::{ParsedEmail, parse_message};
use crate::mail::store::load_parsed;
use crate::store::keys::{ACCT_EMAIL_META, account_prefix};
use crate::store::{KeyRange, Store, chunked};

const ACCOUNT: u32 = 9_102;

fn meta_key(email_id: u64) -> Vec<u8> {
    account_prefix(ACCOUNT)
        .u8(ACCT_EMAIL_META)
        .u64(email_id)
        .build()
}

async fn store_and_load(store: &Store, email_id: u64, stored: Vec<u8>) -> Option<ParsedEmail> {
    store
        .transact(|tx| {
            let stored = stored.clone();
            Box::pin(async move { chunked::write(tx, &meta_key(email_id), &stored) })
        })
        .await
        .expect("write metadata");
    let mut tx = store.backend().begin().await.expect("begin");
    load_parsed(tx.as_mut(), ACCOUNT, email_id)
        .await
        .expect("load metadata")
}

pub async fn email_metadata_reads_in_both_stored_forms(store: &Store) {
    let mut recipients = String::new();
    // Enough addresses that the metadata passes the 100 KB value limit and is chunked.
    for index in 0..4_000 {
        recipients.push_str(&format!("Person {index} <person{index}@example.test>, "));
    }
    recipients.push_str("last@example.test");
    let small = parse_message(
        b"From: A <a@example.test>\r\nSubject: hello\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n",
    );
    let huge = parse_message(
        format!("From: a@example.test\r\nTo: {recipients}\r\nSubject: many\r\n\r\nhi\r\n")
            .as_bytes(),
    );
    assert!(huge.encode_stored().len() > crate::store::MAX_VALUE_BYTES);
    for (email_id, parsed) in [(1, &small), (2, &huge)] {
        let binary = store_and_load(store, email_id, parsed.encode_stored()).await;
        assert_eq!(
            binary.as_ref(),
            Some(parsed),
            "binary form of Email {email_id}"
        );
        let json = serde_json::to_vec(parsed).expect("json");
        let old = store_and_load(store, email_id + 10, json).await;
        assert_eq!(old.as_ref(), Some(parsed), "JSON form of Email {email_id}");
    }
    let mut tx = store.backend().begin().await.expect("begin");
    assert_eq!(
        load_parsed(tx.as_mut(), ACCOUNT, 99).await.expect("load"),
        None
    );
    drop(tx);
    store
        .transact(|tx| {
            Box::pin(
                async move { tx.clear_range(&KeyRange::prefix(&account_prefix(ACCOUNT).build())) },
            )
        })
        .await
        .expect("clean up");
}
