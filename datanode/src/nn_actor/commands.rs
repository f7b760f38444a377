//! Commands from heartbeat and block report answers, each in its own place.

use std::sync::Arc;
use tusk_proto::dfs::datanode_command::Command;
use tusk_proto::dfs::{DatanodeCommand, DeleteBlocksCommand, TransferBlockCommand};

use super::NamenodeActor;
use crate::transfer::push::push_replica;

/// Handles `cmds`; returns true when the namenode asked to register again.
pub(super) async fn handle(actor: &NamenodeActor, cmds: Vec<DatanodeCommand>) -> bool {
    let mut reregister = false;
    for cmd in cmds {
        match cmd.command {
            Some(Command::Delete(d)) => delete_blocks(actor, d).await,
            Some(Command::Transfer(t)) => transfer_block(actor, t),
            Some(Command::Reregister(true)) => reregister = true,
            Some(Command::Recover(r)) => super::recovery::recover_block(actor, r),
            Some(Command::Reregister(false)) | None => {}
        }
    }
    reregister
}

/// Deletes the replicas, then tells the namenode which ones are gone.
async fn delete_blocks(actor: &NamenodeActor, cmd: DeleteBlocksCommand) {
    let storage = Arc::clone(&actor.storage);
    let deleted = tokio::task::spawn_blocking(move || {
        let mut deleted = Vec::new();
        for b in cmd.blocks {
            match storage.delete(b.block_id, b.generation_stamp) {
                Ok(Some(r)) => deleted.push(r),
                Ok(None) => tracing::debug!(block_id = b.block_id, "nothing to delete"),
                Err(e) => tracing::warn!("delete failed: {e}"),
            }
        }
        deleted
    })
    .await
    .unwrap_or_default();
    if deleted.is_empty() {
        return;
    }
    tracing::info!(count = deleted.len(), "replicas deleted on the namenode's command");
    if let Err(e) = actor.client.incremental_report(&actor.id.datanode_uuid, vec![], deleted).await {
        tracing::warn!("reporting deleted replicas: {e}");
    }
}

/// Copies a replica to other datanodes in the background; failures are logged.
fn transfer_block(actor: &NamenodeActor, cmd: TransferBlockCommand) {
    let Some(block) = cmd.block else { return };
    let storage = Arc::clone(&actor.storage);
    let sender = format!("datanode-{}", actor.id.datanode_uuid);
    let timeout = actor.socket_timeout;
    tokio::task::spawn_blocking(move || {
        if let Err(e) = push_replica(&storage, &block, &cmd.targets, &sender, timeout) {
            // A checksum refusal made the replica a scanner suspect (push_replica).
            let to: Vec<&str> = cmd.targets.iter().map(|t| t.transfer_addr.as_str()).collect();
            tracing::warn!(block_id = block.block_id, ?to, "transfer of a replica failed: {e}");
        }
    });
}
