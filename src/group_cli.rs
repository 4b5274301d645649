//! `tern group create|add|remove|list`: groups (RFC 9670 principals of type `group`) from the
//! command line, on the data directory or, while a server holds it, through its admin API
//! (`/admin/groups`).

use http::Method;
use serde_json::{Value, json};

use crate::auth::Directory;
use crate::auth::directory::principals::all_principals;
use crate::config::Config;
use crate::http::admin_client::AdminClient;
use crate::store::StoreErrorKind;

/// One group command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Create { email: String, name: String },
    Add { group: String, member: String },
    Remove { group: String, member: String },
    List,
}

pub async fn run(config: &Config, operation: Operation) -> Result<String, String> {
    let data_dir = &config.server.data_dir;
    if !data_dir.exists() {
        return Err(format!(
            "data directory {} does not exist (use --data-dir or --config)",
            data_dir.display()
        ));
    }
    match crate::server::open_store(config).await {
        Ok(store) => {
            let directory = Directory::new(store.clone());
            let answer = route(&directory, &operation).await;
            drop(directory);
            store.close().await.map_err(|error| error.to_string())?;
            answer.map(|value| render(&operation, &value))
        }
        Err(error) if error.kind == StoreErrorKind::Locked => {
            let client = AdminClient::connect(data_dir)
                .await
                .map_err(|error| error.to_string())?;
            let (method, path, body) = match &operation {
                Operation::Create { email, name } => (
                    Method::POST,
                    "/admin/groups".to_owned(),
                    Some(json!({"email": email, "name": name})),
                ),
                Operation::Add { group, member } => (
                    Method::POST,
                    "/admin/groups/members".to_owned(),
                    Some(json!({"group": group, "member": member, "join": true})),
                ),
                Operation::Remove { group, member } => (
                    Method::POST,
                    "/admin/groups/members".to_owned(),
                    Some(json!({"group": group, "member": member, "join": false})),
                ),
                Operation::List => (Method::GET, "/admin/groups".to_owned(), None),
            };
            let value: Value = client
                .call(method, &path, body)
                .await
                .map_err(|error| error.to_string())?;
            Ok(render(&operation, &value))
        }
        Err(error) => Err(error.message),
    }
}

/// Runs `operation` on the directory; the admin API calls this too.
pub async fn route(directory: &Directory, operation: &Operation) -> Result<Value, String> {
    let text = |error: crate::auth::DirectoryError| error.message;
    match operation {
        Operation::Create { email, name } => {
            let info = directory.create_group(email, name).await.map_err(text)?;
            Ok(json!({"id": info.account_id, "email": info.email}))
        }
        Operation::Add { group, member } => {
            directory
                .add_group_member(group, member)
                .await
                .map_err(text)?;
            Ok(Value::Null)
        }
        Operation::Remove { group, member } => {
            directory
                .remove_group_member(group, member)
                .await
                .map_err(text)?;
            Ok(Value::Null)
        }
        Operation::List => {
            let principals = directory
                .store()
                .read(|tx| Box::pin(async move { all_principals(tx).await }))
                .await
                .map_err(|error| error.to_string())?;
            let emails: std::collections::HashMap<u32, String> = principals
                .iter()
                .map(|principal| (principal.id, principal.email.clone()))
                .collect();
            let groups: Vec<Value> = principals
                .iter()
                .filter(|principal| principal.is_group)
                .map(|group| {
                    let members: Vec<&str> = group
                        .members
                        .iter()
                        .filter_map(|id| emails.get(id).map(String::as_str))
                        .collect();
                    json!({"id": group.id, "email": group.email, "name": group.name, "members": members})
                })
                .collect();
            Ok(Value::Array(groups))
        }
    }
}

fn render(operation: &Operation, value: &Value) -> String {
    match operation {
        Operation::Create { .. } => format!(
            "created group {} (id {})",
            value["email"].as_str().unwrap_or_default(),
            value["id"]
        ),
        Operation::Add { group, member } => format!("{member} is a member of {group}"),
        Operation::Remove { group, member } => format!("{member} left {group}"),
        Operation::List => value
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|group| {
                        let members: Vec<&str> = group["members"]
                            .as_array()
                            .map(|list| list.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        format!(
                            "{}\t{}\t{}\t{}",
                            group["id"],
                            group["email"].as_str().unwrap_or_default(),
                            group["name"].as_str().unwrap_or_default(),
                            members.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
    }
}
