//! The cross-account flow (RFC 9670 sharing, RFC 8621 §4.7 Email/copy, RFC 8620 §6.3
//! Blob/copy) against any server with `urn:ietf:params:jmap:principals`, with two users: the
//! first shares a new Mailbox holding one message with the second; the second sees the
//! first's account in their session, finds the message, copies it and its blob into their own
//! account; the first revokes the grant and the second loses the account. Everything created
//! is removed at the end.

use serde_json::{Value, json};

use crate::http::Auth;
use crate::matcher::matches;
use crate::session::Target;
use crate::{Outcome, Recorder, sections};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const PRINCIPALS: &str = "urn:ietf:params:jmap:principals";
const OWNER: &str = "urn:ietf:params:jmap:principals:owner";

/// One method call; its `[name, arguments]`.
async fn call(
    target: &Target,
    auth: &Auth,
    method: &str,
    arguments: Value,
) -> Result<Value, String> {
    let request =
        json!({"using": [CORE, MAIL, PRINCIPALS], "methodCalls": [[method, arguments, "c"]]});
    let answer = target
        .http
        .post_json(&target.api_url, auth, &request)
        .await?;
    if answer.status != 200 {
        return Err(format!("{method}: HTTP {}", answer.status));
    }
    let body = answer.json()?;
    let response = &body["methodResponses"][0];
    Ok(json!([response[0], response[1]]))
}

fn expect(pattern: Value, value: &Value) -> Result<(), String> {
    matches(&pattern, value).map_err(|difference| format!("{difference}; answer: {value}"))
}

fn message(seed: u64) -> Vec<u8> {
    format!(
        "From: conformance@example.net\r\nTo: shared@example.net\r\nSubject: shared {seed}\r\n\
         Message-ID: <shared-{seed}@example.net>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n\
         A message in a shared Mailbox.\r\n"
    )
    .into_bytes()
}

pub(crate) async fn run(target: &Target, recorder: &mut Recorder<'_>, seed: u64) {
    let section = sections::SHARING;
    if !recorder.wants(section) {
        return;
    }
    let Some(other) = &target.other_user else {
        recorder.record(
            section,
            "cross-account flow",
            Outcome::Skip("needs a second user".into()),
        );
        return;
    };
    if target.session["capabilities"].get(PRINCIPALS).is_none() {
        recorder.record(
            section,
            "cross-account flow",
            Outcome::Skip("the server has no urn:ietf:params:jmap:principals".into()),
        );
        return;
    }
    let mut cleanup: Vec<(bool, &str, Value)> = Vec::new();
    let outcome = flow(target, recorder, other, seed, &mut cleanup).await;
    if let Err(reason) = outcome {
        recorder.record(section, "cross-account flow", Outcome::Fail(reason));
    }
    for (by_owner, method, arguments) in cleanup.into_iter().rev() {
        let auth = if by_owner { &target.auth } else { &other.auth };
        let _ = call(target, auth, method, arguments).await;
    }
}

async fn flow(
    target: &Target,
    recorder: &mut Recorder<'_>,
    other: &crate::session::OtherUser,
    seed: u64,
    cleanup: &mut Vec<(bool, &'static str, Value)>,
) -> Result<(), String> {
    let section = sections::SHARING;
    let owner_account = &target.account_id;
    // The second user's principal id, from their own session (RFC 9670 §3.2).
    let other_session = target
        .http
        .get(&target.config.session_url, &other.auth)
        .await?
        .json()?;
    let other_principal = other_session["accounts"][&other.account_id]["accountCapabilities"]
        [OWNER]["principalId"]
        .as_str()
        .ok_or("the second user's account names no principalId")?
        .to_owned();

    let created = call(
        target,
        &target.auth,
        "Mailbox/set",
        json!({"accountId": owner_account, "create": {"s": {"name": format!("conformance shared {seed}"),
            "shareWith": {other_principal.clone(): {"mayReadItems": true, "mayAddItems": true}}}}}),
    )
    .await?;
    let mailbox = created[1]["created"]["s"]["id"]
        .as_str()
        .ok_or_else(|| format!("the shared Mailbox was not created: {created}"))?
        .to_owned();
    cleanup.push((
        true,
        "Mailbox/set",
        json!({"accountId": owner_account, "destroy": [mailbox], "onDestroyRemoveEmails": true}),
    ));
    let upload_url = target.upload_url.replace("{accountId}", owner_account);
    let uploaded = target
        .http
        .post_bytes(&upload_url, &target.auth, "message/rfc822", message(seed))
        .await?
        .json()?;
    let blob_id = uploaded["blobId"]
        .as_str()
        .ok_or("upload gave no blobId")?
        .to_owned();
    let imported = call(
        target,
        &target.auth,
        "Email/import",
        json!({"accountId": owner_account, "emails": {"e": {"blobId": blob_id, "mailboxIds": {mailbox.clone(): true}}}}),
    )
    .await?;
    let email = imported[1]["created"]["e"]["id"]
        .as_str()
        .ok_or_else(|| format!("import failed: {imported}"))?
        .to_owned();

    let session = target
        .http
        .get(&target.config.session_url, &other.auth)
        .await?
        .json()?;
    recorder.check(
        section,
        "the grantee's session lists the shared account, not personal",
        expect(
            json!({"isPersonal": false, "accountCapabilities": {MAIL: "$object"}}),
            &session["accounts"][owner_account],
        ),
    );
    let found = call(
        target,
        &other.auth,
        "Email/query",
        json!({"accountId": owner_account, "filter": {"inMailbox": mailbox}}),
    )
    .await?;
    recorder.check(
        section,
        "the grantee finds the shared Email",
        expect(json!(["Email/query", {"ids": [email]}]), &found),
    );

    let inbox = call(
        target,
        &other.auth,
        "Mailbox/query",
        json!({"accountId": other.account_id, "filter": {"role": "inbox"}}),
    )
    .await?;
    let inbox = inbox[1]["ids"][0]
        .as_str()
        .ok_or("the grantee has no inbox")?
        .to_owned();
    let copied = call(
        target,
        &other.auth,
        "Email/copy",
        json!({"fromAccountId": owner_account, "accountId": other.account_id,
               "create": {"k": {"id": email, "mailboxIds": {inbox: true}}}}),
    )
    .await?;
    if let Some(copy) = copied[1]["created"]["k"]["id"].as_str() {
        cleanup.push((
            false,
            "Email/set",
            json!({"accountId": other.account_id, "destroy": [copy]}),
        ));
    }
    recorder.check(
        section,
        "Email/copy from the shared account into the grantee's own",
        expect(json!(["Email/copy", {"fromAccountId": owner_account, "created": {"k": {"id": "$id", "blobId": "$string"}}}]), &copied),
    );
    let blob_copy = call(
        target,
        &other.auth,
        "Blob/copy",
        json!({"fromAccountId": owner_account, "accountId": other.account_id, "blobIds": [blob_id]}),
    )
    .await?;
    recorder.check(
        section,
        "Blob/copy from the shared account into the grantee's own",
        expect(
            json!(["Blob/copy", {"copied": {blob_id.as_str(): blob_id}}]),
            &blob_copy,
        ),
    );

    let revoked = call(
        target,
        &target.auth,
        "Mailbox/set",
        json!({"accountId": owner_account, "update": {mailbox.clone(): {"shareWith": {}}}}),
    )
    .await?;
    expect(
        json!(["Mailbox/set", {"updated": {mailbox.as_str(): "$any"}}]),
        &revoked,
    )?;
    let after = call(
        target,
        &other.auth,
        "Email/get",
        json!({"accountId": owner_account, "ids": [email]}),
    )
    .await?;
    let gone = after[0] == "error" || after[1]["notFound"] == json!([email]);
    recorder.check(
        section,
        "after the revocation the grantee cannot read the Email",
        gone.then_some(())
            .ok_or_else(|| format!("still readable: {after}")),
    );
    Ok(())
}
