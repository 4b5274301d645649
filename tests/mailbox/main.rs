//! Mailbox (RFC 8621 §2) through the real `jmap-client` crate, and raw JSON where the exact
//! error objects matter: default Mailboxes, hierarchy, every SetError, queries with
//! sortAsTree/filterAsTree, /changes with updatedProperties, /queryChanges.

#[path = "../common/mod.rs"]
mod common;
mod counts;

use common::TestServer;
use jmap_client::client::Client;
use jmap_client::core::response::{MailboxGetResponse, MailboxSetResponse};
use jmap_client::core::set::{SetErrorType, SetObject};
use jmap_client::mailbox::query::{Comparator, Filter as MailboxFilter};
use jmap_client::mailbox::{Mailbox, Role};
use jmap_client::{URI, core::request::Request};
use serde_json::{Value, json};

const USING: [&str; 2] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"];

pub(crate) async fn connect(server: &TestServer) -> Client {
    server.jmap_client(server.alice()).await
}

/// A request that names exactly the capabilities it uses (RFC 8620 §3.3).
pub(crate) fn mail_request(client: &Client) -> Request<'_> {
    let mut request = client.build();
    request.using = vec![URI::Core, URI::Mail];
    request
}

pub(crate) async fn all_mailboxes(client: &Client) -> Vec<Mailbox> {
    let mut request = mail_request(client);
    request.get_mailbox();
    let mut response: MailboxGetResponse = request.send_single().await.expect("Mailbox/get");
    response.take_list()
}

pub(crate) async fn create(client: &Client, name: &str, parent_id: Option<&str>) -> String {
    let mut request = mail_request(client);
    let creation_id = request
        .set_mailbox()
        .create()
        .name(name)
        .parent_id(parent_id)
        .create_id()
        .expect("creation id");
    let mut response: MailboxSetResponse = request.send_single().await.expect("Mailbox/set");
    response.created(&creation_id).expect("created").take_id()
}

/// One raw method call; returns its response arguments (or the error object).
pub(crate) async fn call(server: &TestServer, method: &str, arguments: Value) -> (String, Value) {
    let request = json!({"using": USING, "methodCalls": [[method, arguments, "c0"]]});
    let answer = server.post_api(server.alice(), &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = answer.json();
    let first = &response["methodResponses"][0];
    (
        first[0].as_str().expect("name").to_owned(),
        first[1].clone(),
    )
}

pub(crate) async fn mailbox_set(server: &TestServer, arguments: Value) -> Value {
    let mut arguments = arguments;
    arguments["accountId"] = json!(server.alice().account_id);
    let (name, response) = call(server, "Mailbox/set", arguments).await;
    assert_eq!(name, "Mailbox/set", "{response}");
    response
}

async fn query_ids(server: &TestServer, arguments: Value) -> Value {
    let mut arguments = arguments;
    arguments["accountId"] = json!(server.alice().account_id);
    let (name, response) = call(server, "Mailbox/query", arguments).await;
    assert_eq!(name, "Mailbox/query", "{response}");
    response["ids"].clone()
}

#[tokio::test]
async fn every_account_starts_with_the_default_mailboxes() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let mailboxes = all_mailboxes(&client).await;
    let mut roles: Vec<Role> = mailboxes.iter().map(|mailbox| mailbox.role()).collect();
    roles.sort_by_key(|role| format!("{role:?}"));
    assert_eq!(
        roles,
        vec![
            Role::Archive,
            Role::Drafts,
            Role::Inbox,
            Role::Junk,
            Role::Sent,
            Role::Trash
        ]
    );
    for mailbox in &mailboxes {
        assert_eq!(mailbox.parent_id(), None);
        assert!(mailbox.is_subscribed());
        assert_eq!(mailbox.total_emails(), 0);
        assert_eq!(mailbox.unread_threads(), 0);
        let rights = mailbox.my_rights().expect("myRights");
        assert!(rights.may_read_items() && rights.may_add_items() && rights.may_rename());
        // The inbox is where mail is delivered: it cannot be deleted.
        assert_eq!(rights.may_delete(), mailbox.role() != Role::Inbox);
    }
    let inbox = mailboxes
        .iter()
        .find(|mailbox| mailbox.role() == Role::Inbox)
        .expect("inbox");
    assert_eq!(inbox.name(), Some("Inbox"));
    // Asking again creates nothing more.
    assert_eq!(all_mailboxes(&client).await.len(), 6);
    // Bob has his own.
    let bob_request = json!({"using": USING, "methodCalls": [["Mailbox/get",
        {"accountId": server.bob().account_id, "ids": null, "properties": ["role"]}, "b"]]});
    let answer = server.post_api(server.bob(), &bob_request).await.json();
    assert_eq!(
        answer["methodResponses"][0][1]["list"]
            .as_array()
            .expect("list")
            .len(),
        6
    );
    server.shutdown().await;
}

#[tokio::test]
async fn mailboxes_form_a_tree_that_can_be_renamed_and_moved() {
    let server = TestServer::start().await;
    let client = connect(&server).await;

    // A parent and its child in one request, the child naming the parent by creation id.
    let mut request = mail_request(&client);
    let set = request.set_mailbox();
    set.create_with_id("parent").name("Work");
    set.create_with_id("child")
        .name("Projects")
        .parent_id_ref("parent")
        .sort_order(5)
        .is_subscribed(false);
    let mut response: MailboxSetResponse = request.send_single().await.expect("Mailbox/set");
    let parent = response.created("parent").expect("parent created");
    let child = response.created("child").expect("child created");
    let parent_id = parent.id().expect("parent id").to_owned();
    let child_id = child.id().expect("child id").to_owned();
    assert_eq!(child.parent_id(), Some(parent_id.as_str()));

    let mut request = mail_request(&client);
    request.get_mailbox().ids([child_id.as_str()]);
    let mut got: MailboxGetResponse = request.send_single().await.expect("get");
    let fetched = got.take_list().pop().expect("the child");
    assert_eq!(fetched.name(), Some("Projects"));
    assert_eq!(fetched.parent_id(), Some(parent_id.as_str()));
    assert_eq!(fetched.sort_order(), 5);
    assert!(!fetched.is_subscribed());

    // Rename, move to the top, and give it a role.
    let mut request = mail_request(&client);
    request
        .set_mailbox()
        .update(&child_id)
        .name("Old projects")
        .parent_id(None::<String>)
        .role(Role::Other("flagged".to_owned()));
    let mut response: MailboxSetResponse = request.send_single().await.expect("update");
    response.updated(&child_id).expect("updated");
    let moved = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.id() == Some(child_id.as_str()))
        .expect("still there");
    assert_eq!(moved.name(), Some("Old projects"));
    assert_eq!(moved.parent_id(), None);
    assert_eq!(moved.role(), Role::Other("flagged".to_owned()));
    server.shutdown().await;
}

pub(crate) fn set_error(response: &Value, map: &str, key: &str) -> (String, Vec<String>) {
    let error = &response[map][key];
    let kind = error["type"]
        .as_str()
        .unwrap_or_else(|| panic!("{map}/{key} missing in {response}"))
        .to_owned();
    let properties = error["properties"]
        .as_array()
        .map(|properties| {
            properties
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (kind, properties)
}

#[tokio::test]
async fn invalid_creates_name_the_invalid_properties() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let work = create(&client, "Work", None).await;
    let long_name = "n".repeat(256);
    let longest_name = "n".repeat(255);
    let response = mailbox_set(
        &server,
        json!({"create": {
            "noName": {"parentId": null},
            "emptyName": {"name": ""},
            "control": {"name": "a\u{7}b"},
            "tooLong": {"name": long_name},
            "longest": {"name": longest_name},
            "sibling": {"name": "Work"},
            "cousin": {"name": "Work", "parentId": work},
            "noParent": {"name": "Orphan", "parentId": "m999"},
            "badRole": {"name": "Odd", "role": "nonexistent"},
            "upperRole": {"name": "Odd2", "role": "Flagged"},
            "takenRole": {"name": "Second inbox", "role": "inbox"},
            "counts": {"name": "Counted", "totalEmails": 0},
            "rights": {"name": "Righteous", "myRights": {}},
            "id": {"name": "With id", "id": "m1"},
            "negative": {"name": "Negative", "sortOrder": -1},
            "huge": {"name": "Huge", "sortOrder": 2147483648u64},
            "subscribed": {"name": "Sub", "isSubscribed": "yes"},
            "several": {"name": "", "role": "bogus", "sortOrder": "1"},
            "unknown": {"name": "X", "color": "red"}
        }}),
    )
    .await;
    let expect = |key: &str, properties: &[&str]| {
        let (kind, named) = set_error(&response, "notCreated", key);
        assert_eq!(kind, "invalidProperties", "{key}: {response}");
        assert_eq!(named, properties, "{key}");
    };
    expect("noName", &["name"]);
    expect("emptyName", &["name"]);
    expect("control", &["name"]);
    expect("tooLong", &["name"]);
    // A name taken by a sibling, and nothing else wrong: alreadyExists naming the sibling.
    let (kind, _) = set_error(&response, "notCreated", "sibling");
    assert_eq!(kind, "alreadyExists", "{response}");
    assert_eq!(
        response["notCreated"]["sibling"]["existingId"],
        json!(work),
        "{response}"
    );
    expect("noParent", &["parentId"]);
    expect("badRole", &["role"]);
    expect("upperRole", &["role"]);
    expect("takenRole", &["role"]);
    expect("counts", &["totalEmails"]);
    expect("rights", &["myRights"]);
    expect("id", &["id"]);
    expect("negative", &["sortOrder"]);
    expect("huge", &["sortOrder"]);
    expect("subscribed", &["isSubscribed"]);
    expect("several", &["name", "role", "sortOrder"]);
    expect("unknown", &["color"]);
    // A name under another parent, and a name of exactly maxSizeMailboxName octets, are fine.
    assert!(
        response["created"]["cousin"]["id"].is_string(),
        "{response}"
    );
    assert!(
        response["created"]["longest"]["id"].is_string(),
        "{response}"
    );
    // The server reports what it set and the defaults of what the client omitted.
    let created = &response["created"]["cousin"];
    assert_eq!(created["totalEmails"], 0);
    assert_eq!(created["role"], Value::Null);
    assert_eq!(created["sortOrder"], 0);
    assert_eq!(created["isSubscribed"], true);
    assert_eq!(created["myRights"]["mayDelete"], true);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_updates_are_refused_and_leave_the_mailbox_unchanged() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let top = create(&client, "Top", None).await;
    let middle = create(&client, "Middle", Some(&top)).await;
    let bottom = create(&client, "Bottom", Some(&middle)).await;
    let other = create(&client, "Other", None).await;
    let inbox = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.role() == Role::Inbox)
        .and_then(|mailbox| mailbox.id().map(str::to_owned))
        .expect("inbox");
    let response = mailbox_set(
        &server,
        json!({"update": {
            top.clone(): {"parentId": bottom},
            middle.clone(): {"parentId": middle},
            other.clone(): {"name": "Top"},
            bottom.clone(): {"role": "inbox", "totalEmails": 5},
            inbox.clone(): {"role": null},
            "m999": {"name": "Ghost"}
        }}),
    )
    .await;
    assert_eq!(
        set_error(&response, "notUpdated", &top),
        ("invalidProperties".to_owned(), vec!["parentId".to_owned()]),
        "a loop: {response}"
    );
    assert_eq!(
        set_error(&response, "notUpdated", &middle),
        ("invalidProperties".to_owned(), vec!["parentId".to_owned()])
    );
    // Renamed to a sibling's name: alreadyExists (RFC 8620 §5.4).
    assert_eq!(
        set_error(&response, "notUpdated", &other),
        ("alreadyExists".to_owned(), Vec::new())
    );
    let (kind, properties) = set_error(&response, "notUpdated", &bottom);
    assert_eq!(kind, "invalidProperties");
    assert!(properties.contains(&"totalEmails".to_owned()), "{response}");
    assert_eq!(set_error(&response, "notUpdated", &inbox).0, "forbidden");
    assert_eq!(set_error(&response, "notUpdated", "m999").0, "notFound");

    // Setting a server-set property to its current value is allowed (RFC 8620 §5.3).
    let response = mailbox_set(
        &server,
        json!({"update": {other.clone(): {"totalEmails": 0, "sortOrder": 3}}}),
    )
    .await;
    assert!(response["updated"][&other].is_null(), "{response}");
    assert!(response["notUpdated"].is_null(), "{response}");
    server.shutdown().await;
}

#[tokio::test]
async fn destroy_rules_children_inbox_and_order() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let parent = create(&client, "Parent", None).await;
    let child = create(&client, "Child", Some(&parent)).await;
    let inbox = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.role() == Role::Inbox)
        .and_then(|mailbox| mailbox.id().map(str::to_owned))
        .expect("inbox");

    // Through jmap-client: the parent alone fails with mailboxHasChild.
    let mut request = mail_request(&client);
    request.set_mailbox().destroy([parent.as_str()]);
    let mut response: MailboxSetResponse = request.send_single().await.expect("set");
    match response.destroyed(&parent) {
        Err(jmap_client::Error::Set(error)) => {
            assert_eq!(error.error(), &SetErrorType::MailboxHasChild);
        }
        other => panic!("expected mailboxHasChild, got {other:?}"),
    }
    let response = mailbox_set(&server, json!({"destroy": [inbox, "m999"]})).await;
    assert_eq!(set_error(&response, "notDestroyed", &inbox).0, "forbidden");
    assert_eq!(set_error(&response, "notDestroyed", "m999").0, "notFound");

    // Parent listed before its child: both go.
    let response = mailbox_set(&server, json!({"destroy": [parent, child]})).await;
    let destroyed = response["destroyed"].as_array().expect("destroyed");
    assert_eq!(destroyed.len(), 2, "{response}");
    assert_eq!(all_mailboxes(&client).await.len(), 6);
    server.shutdown().await;
}

#[tokio::test]
async fn queries_filter_sort_and_follow_the_tree() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    // Defaults have sortOrder 1..6; these have 0.
    let zeta = create(&client, "Zeta", None).await;
    let alpha = create(&client, "alpha", Some(&zeta)).await;
    let beta = create(&client, "Beta", Some(&zeta)).await;
    let deep = create(&client, "Deep beta", Some(&alpha)).await;
    let mut request = mail_request(&client);
    request.set_mailbox().update(&beta).is_subscribed(false);
    request
        .send_single::<MailboxSetResponse>()
        .await
        .expect("unsubscribe");

    // jmap-client: children of Zeta by name (case-insensitive by default).
    let mut request = mail_request(&client);
    request
        .query_mailbox()
        .filter(MailboxFilter::parent_id(Some(zeta.as_str())))
        .sort([Comparator::name()]);
    let response: jmap_client::core::query::QueryResponse =
        request.send_single().await.expect("query");
    assert_eq!(response.ids(), [alpha.as_str(), beta.as_str()]);

    // Name contains, ignoring case; role; hasAnyRole; isSubscribed; operators.
    assert_eq!(
        query_ids(
            &server,
            json!({"filter": {"name": "BETA"}, "sort": [{"property": "name"}]})
        )
        .await,
        json!([beta, deep])
    );
    assert_eq!(
        query_ids(&server, json!({"filter": {"role": "trash"}}))
            .await
            .as_array()
            .expect("ids")
            .len(),
        1
    );
    assert_eq!(
        query_ids(
            &server,
            json!({"filter": {"hasAnyRole": false}, "sort": [{"property": "name"}]})
        )
        .await,
        json!([alpha, beta, deep, zeta])
    );
    assert_eq!(
        query_ids(&server, json!({"filter": {"isSubscribed": false}})).await,
        json!([beta])
    );
    assert_eq!(
        query_ids(
            &server,
            json!({"filter": {"operator": "AND", "conditions": [
                {"hasAnyRole": false},
                {"operator": "NOT", "conditions": [{"name": "beta"}]}
            ]}, "sort": [{"property": "name", "isAscending": false}]})
        )
        .await,
        json!([zeta, alpha])
    );

    // sortAsTree: ancestors first, siblings by the comparators (name descending here).
    let mut request = mail_request(&client);
    let query = request
        .query_mailbox()
        .filter(MailboxFilter::has_any_role(false))
        .sort([Comparator::name().descending()]);
    query.arguments().sort_as_tree(true);
    let response: jmap_client::core::query::QueryResponse =
        request.send_single().await.expect("sortAsTree");
    assert_eq!(
        response.ids(),
        [zeta.as_str(), beta.as_str(), alpha.as_str(), deep.as_str()]
    );

    // filterAsTree: "Deep beta" matches "beta" but its parent "alpha" does not.
    assert_eq!(
        query_ids(
            &server,
            json!({"filter": {"name": "beta"}, "filterAsTree": true, "sort": [{"property": "name"}]})
        )
        .await,
        json!([])
    );
    assert_eq!(
        query_ids(
            &server,
            json!({"filter": {"hasAnyRole": false}, "filterAsTree": true, "sortAsTree": true,
                "sort": [{"property": "sortOrder"}, {"property": "name"}]})
        )
        .await,
        json!([zeta, alpha, deep, beta])
    );
    // Sorted by sortOrder: the defaults in their order after the 0s.
    let ids = query_ids(
        &server,
        json!({"sort": [{"property": "sortOrder"}, {"property": "name"}], "position": 4, "limit": 2}),
    )
    .await;
    let names: Vec<String> = {
        let all = all_mailboxes(&client).await;
        ids.as_array()
            .expect("ids")
            .iter()
            .map(|id| {
                all.iter()
                    .find(|mailbox| mailbox.id() == id.as_str())
                    .and_then(|mailbox| mailbox.name())
                    .expect("name")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(names, ["Inbox", "Drafts"]);

    // An unknown sort property and an unknown condition are method errors.
    let mut request = mail_request(&client);
    request.query_mailbox().sort([Comparator::parent_id()]);
    match request
        .send_single::<jmap_client::core::query::QueryResponse>()
        .await
    {
        Err(jmap_client::Error::Method(error)) => {
            assert_eq!(
                error.error(),
                &jmap_client::core::error::MethodErrorType::UnsupportedSort
            );
        }
        other => panic!("expected unsupportedSort, got {other:?}"),
    }
    let arguments = json!({"accountId": server.alice().account_id, "filter": {"colour": "red"}});
    let (name, error) = call(&server, "Mailbox/query", arguments).await;
    assert_eq!(
        (name.as_str(), &error["type"]),
        ("error", &json!("unsupportedFilter"))
    );
    let arguments =
        json!({"accountId": server.alice().account_id, "filter": {"hasAnyRole": "yes"}});
    let (name, error) = call(&server, "Mailbox/query", arguments).await;
    assert_eq!(
        (name.as_str(), &error["type"]),
        ("error", &json!("invalidArguments"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn changes_and_query_changes_follow_set() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let mut request = mail_request(&client);
    request.get_mailbox();
    let response: MailboxGetResponse = request.send_single().await.expect("get");
    let state = response.state().to_owned();
    let mut request = mail_request(&client);
    request.query_mailbox().sort([Comparator::name()]);
    let mut query: jmap_client::core::query::QueryResponse =
        request.send_single().await.expect("query");
    let query_state = query.take_query_state();

    let created = create(&client, "Receipts", None).await;
    let mut request = mail_request(&client);
    request.changes_mailbox(&state);
    let changes: jmap_client::core::changes::ChangesResponse<Mailbox> =
        request.send_single().await.expect("changes");
    assert_eq!(changes.created(), [created.as_str()]);
    assert!(changes.updated().is_empty() && changes.destroyed().is_empty());
    let after_create = changes.new_state().to_owned();

    let mut request = mail_request(&client);
    request.set_mailbox().update(&created).name("Bills");
    request
        .send_single::<MailboxSetResponse>()
        .await
        .expect("rename");
    let mut request = mail_request(&client);
    request.changes_mailbox(&after_create);
    let changes: jmap_client::core::changes::ChangesResponse<Mailbox> =
        request.send_single().await.expect("changes");
    assert_eq!(changes.updated(), [created.as_str()]);
    // A rename is not a count change: updatedProperties is null.
    assert_eq!(changes.arguments().updated_properties(), None);

    let mut request = mail_request(&client);
    request
        .query_mailbox_changes(&query_state)
        .sort([Comparator::name()]);
    let query_changes: jmap_client::core::query_changes::QueryChangesResponse =
        request.send_single().await.expect("queryChanges");
    let added: Vec<(&str, usize)> = query_changes
        .added()
        .iter()
        .map(|item| (item.id(), item.index()))
        .collect();
    // "Bills" sorts second by name: Archive, Bills, Drafts, …
    assert_eq!(added, [(created.as_str(), 1)]);

    let mut request = mail_request(&client);
    request.set_mailbox().destroy([created.as_str()]);
    request
        .send_single::<MailboxSetResponse>()
        .await
        .expect("destroy");
    let mut request = mail_request(&client);
    request.changes_mailbox(&after_create);
    let changes: jmap_client::core::changes::ChangesResponse<Mailbox> =
        request.send_single().await.expect("changes");
    assert_eq!(changes.destroyed(), [created.as_str()]);
    assert!(changes.updated().is_empty());
    server.shutdown().await;
}

/// RFC 8621 §2: names are Net-Unicode (NFC). A decomposed spelling is stored composed, the
/// server says so, and it collides with its composed sibling.
#[tokio::test]
async fn names_are_stored_in_nfc() {
    let server = TestServer::start().await;
    let response = mailbox_set(
        &server,
        json!({"create": {"decomposed": {"name": "Cafe\u{301}"}}}),
    )
    .await;
    assert_eq!(
        response["created"]["decomposed"]["name"], "Caf\u{e9}",
        "{response}"
    );
    let response = mailbox_set(
        &server,
        json!({"create": {"composed": {"name": "Caf\u{e9}"}}}),
    )
    .await;
    assert_eq!(
        set_error(&response, "notCreated", "composed"),
        ("alreadyExists".to_owned(), Vec::new())
    );
    server.shutdown().await;
}

/// A role moves from one Mailbox to another in one /set, whatever order the ids sort in.
#[tokio::test]
async fn a_role_moves_between_mailboxes_in_one_set() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let archive = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.role() == Role::Archive)
        .and_then(|mailbox| mailbox.id().map(str::to_owned))
        .expect("archive");
    // Created later, so its id sorts after the archive's in the update map.
    let attic = create(&client, "Attic", None).await;
    for (from, to) in [(&archive, &attic), (&attic, &archive)] {
        let response = mailbox_set(
            &server,
            json!({"update": {to.clone(): {"role": "archive"}, from.clone(): {"role": null}}}),
        )
        .await;
        assert!(response["notUpdated"].is_null(), "{response}");
        let holder = all_mailboxes(&client)
            .await
            .into_iter()
            .find(|mailbox| mailbox.role() == Role::Archive)
            .and_then(|mailbox| mailbox.id().map(str::to_owned));
        assert_eq!(holder.as_deref(), Some(to.as_str()));
    }
    server.shutdown().await;
}
