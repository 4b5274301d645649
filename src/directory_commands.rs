//! `tern cluster` and `tern group`: the commands about who serves and who shares accounts.

use clap::Subcommand;
use tern::auth::Directory;
use tern::server::open_store;

use crate::{CliError, DataArgs, load_config};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// List the nodes (state, liveness, accounts owned).
    Status {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Make a node hand all its accounts over and claim no new ones.
    Drain {
        /// Node name or id.
        node: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Give an account to a node.
    Move {
        /// The account's email address.
        account: String,
        /// Node name or id.
        node: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group: an address with a team account and no login.
    Create {
        email: String,
        /// The display name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Add an account to a group: it gets what is shared with the group.
    Add {
        group: String,
        member: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove an account from a group; it loses the group's shares at once.
    Remove {
        group: String,
        member: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List groups with their members.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

pub async fn cluster(command: ClusterCommand) -> Result<(), CliError> {
    use tern::cluster::cli;
    let data = match &command {
        ClusterCommand::Status { data }
        | ClusterCommand::Drain { data, .. }
        | ClusterCommand::Move { data, .. } => data,
    };
    let config = load_config(data)?;
    if config.store.backend != tern::config::StoreBackendKind::Foundationdb {
        return Err(CliError(
            "tern cluster needs store.backend = \"foundationdb\" in the configuration".to_owned(),
        ));
    }
    let store = open_store(&config).await?;
    let outcome = async {
        match command {
            ClusterCommand::Status { .. } => {
                let watch = config.cluster.heartbeat_interval() * 3;
                let status = cli::status(&store, watch).await?;
                print!("{}", cli::render_status(&status));
            }
            ClusterCommand::Drain { node, .. } => {
                let record = cli::drain(&store, &node).await.map_err(CliError)?;
                println!(
                    "node {} ({}) is draining; it hands its accounts over within a heartbeat",
                    record.name,
                    tern::cluster::format_node(record.id)
                );
            }
            ClusterCommand::Move { account, node, .. } => {
                let directory = Directory::new(store.clone());
                let info = directory
                    .account(&account)
                    .await
                    .map_err(|error| CliError(error.message))?;
                let hooks = tern::server::claim_hooks();
                let (before, after) = cli::move_account(&store, info.account_id, &node, &hooks)
                    .await
                    .map_err(CliError)?;
                println!(
                    "{account}: owner {} epoch {} -> {} epoch {}",
                    before
                        .node
                        .map_or("none".to_owned(), tern::cluster::format_node),
                    before.epoch,
                    after
                        .node
                        .map_or("none".to_owned(), tern::cluster::format_node),
                    after.epoch
                );
            }
        }
        Ok::<(), CliError>(())
    }
    .await;
    store.close().await?;
    outcome
}

/// `tern group …`, on the data directory or through the running server.
pub async fn group(command: GroupCommand) -> Result<(), CliError> {
    use tern::group_cli::Operation;
    let (data, operation) = match command {
        GroupCommand::Create { email, name, data } => (data, Operation::Create { email, name }),
        GroupCommand::Add {
            group,
            member,
            data,
        } => (data, Operation::Add { group, member }),
        GroupCommand::Remove {
            group,
            member,
            data,
        } => (data, Operation::Remove { group, member }),
        GroupCommand::List { data } => (data, Operation::List),
    };
    let config = load_config(&data)?;
    println!("{}", tern::group_cli::run(&config, operation).await?);
    Ok(())
}
