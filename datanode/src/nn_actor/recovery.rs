//! Block recovery as the primary datanode (HDFS `BlockRecoveryWorker`), on a
//! `RecoverBlockCommand` from the namenode, in the background:
//!
//! 1. `InitReplicaRecovery{block, recovery_id}` to every target (this
//!    datanode too, over its own transfer address): each stops any writer
//!    of its replica and answers state, generation stamp and valid length.
//! 2. The length: if a replica is FINALIZED, its length, and only replicas
//!    at least that long take part; else the shortest RBW replica's length.
//! 3. `UpdateReplicaUnderRecovery{block, recovery_id, new_length}` on every
//!    participant: truncate, finalize with the recovery id, report.
//! 4. `CommitBlockSynchronization{block (old stamp), recovery_id, length,
//!    close_file, datanode_uuids: the participants that succeeded}`.
//!
//! No usable replica among targets that all answered: the commit asks to
//! delete the block. A target refusing with ERROR_EXISTS (a newer recovery
//! owns its replica), an unreachable target with nothing usable elsewhere,
//! or every update failing: nothing is committed; the namenode retries the
//! recovery after its timeout.

use std::time::Duration;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::{
    CommitBlockSynchronizationRequest, DatanodeId, ExtendedBlock, OpInitReplicaRecovery,
    OpUpdateReplicaUnderRecovery, RecoverBlockCommand, ReplicaState, TransferStatus,
};

use super::NamenodeActor;
use crate::transfer::recovery::call_op;

/// One target's answer to InitReplicaRecovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaAnswer {
    pub uuid: String,
    pub addr: String,
    pub state: ReplicaState,
    pub len: u64,
}

/// Starts the recovery of `cmd.block` in the background.
pub(super) fn recover_block(actor: &NamenodeActor, cmd: RecoverBlockCommand) {
    let Some(block) = cmd.block else {
        tracing::warn!("recover-block command without a block");
        return;
    };
    let client = actor.client.clone();
    let timeout = actor.socket_timeout;
    let recovery_id = cmd.new_generation_stamp;
    tracing::info!(block_id = block.block_id, recovery_id, targets = cmd.targets.len(), "block recovery started");
    tokio::spawn(async move {
        let block_id = block.block_id;
        let targets = cmd.targets;
        let planned = tokio::task::spawn_blocking(move || coordinate(&block, recovery_id, &targets, timeout)).await;
        match planned {
            Ok(Ok(req)) => {
                let (len, uuids, delete) = (req.new_length, req.datanode_uuids.clone(), req.delete_block);
                match client.commit_block_synchronization(req).await {
                    Ok(()) => {
                        tracing::info!(block_id, recovery_id, len, ?uuids, delete, "block recovery committed")
                    }
                    Err(e) => tracing::warn!(block_id, recovery_id, "commit of the block recovery failed: {e}"),
                }
            }
            Ok(Err(why)) => tracing::warn!(block_id, recovery_id, "block recovery abandoned: {why}"),
            Err(e) => tracing::error!(block_id, recovery_id, "block recovery task failed: {e}"),
        }
    });
}

/// Runs steps 1 to 3 (blocking I/O); the commit to send, or why none is.
pub(crate) fn coordinate(
    block: &ExtendedBlock,
    recovery_id: u64,
    targets: &[DatanodeId],
    timeout: Duration,
) -> Result<CommitBlockSynchronizationRequest, String> {
    let block_id = block.block_id;
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for t in targets {
        let op = Op::InitReplicaRecovery(OpInitReplicaRecovery { block: Some(*block), recovery_id });
        match call_op(&t.transfer_addr, op, timeout) {
            Ok(resp) if resp.status == TransferStatus::Success as i32 => {
                let state = ReplicaState::try_from(resp.replica_state).unwrap_or(ReplicaState::ReplicaRbw);
                answers.push(ReplicaAnswer {
                    uuid: t.datanode_uuid.clone(),
                    addr: t.transfer_addr.clone(),
                    state,
                    len: resp.replica_length,
                });
            }
            Ok(resp) if resp.status == TransferStatus::ErrorExists as i32 => {
                return Err(format!("{}: {} (a newer recovery is in progress)", t.transfer_addr, resp.message));
            }
            Ok(resp) => tracing::info!(block_id, target = %t.transfer_addr, "no usable replica: {}", resp.message),
            Err(e) => {
                tracing::warn!(block_id, target = %t.transfer_addr, "replica recovery: {e}");
                unreachable.push(t.transfer_addr.clone());
            }
        }
    }
    let commit = |new_length, delete_block, datanode_uuids| CommitBlockSynchronizationRequest {
        block: Some(*block),
        new_generation_stamp: recovery_id,
        new_length,
        close_file: true,
        delete_block,
        datanode_uuids,
    };
    let Some((len, participants)) = choose_length(&answers)? else {
        if !unreachable.is_empty() {
            return Err(format!("no usable replica, and {unreachable:?} could not be asked"));
        }
        tracing::warn!(block_id, recovery_id, "no target holds a usable replica: the block is to be deleted");
        return Ok(commit(0, true, Vec::new()));
    };
    let mut done = Vec::new();
    for a in participants {
        let op = Op::UpdateReplicaUnderRecovery(OpUpdateReplicaUnderRecovery {
            block: Some(*block),
            recovery_id,
            new_length: len,
        });
        match call_op(&a.addr, op, timeout) {
            Ok(resp) if resp.status == TransferStatus::Success as i32 => done.push(a.uuid.clone()),
            Ok(resp) => tracing::warn!(block_id, target = %a.addr, "replica update refused: {}", resp.message),
            Err(e) => tracing::warn!(block_id, target = %a.addr, "replica update: {e}"),
        }
    }
    if done.is_empty() {
        return Err(format!("every replica update failed (length {len})"));
    }
    Ok(commit(len, false, done))
}

/// The recovered length and the replicas that take part: a finalized
/// replica's length and the replicas at least that long, else the shortest
/// length and every replica. `None` without replicas. Finalized replicas
/// that disagree on their length are an error (as in HDFS): nothing is
/// committed and the namenode retries later.
#[allow(clippy::type_complexity)]
pub(crate) fn choose_length(answers: &[ReplicaAnswer]) -> Result<Option<(u64, Vec<&ReplicaAnswer>)>, String> {
    let mut finalized = answers.iter().filter(|a| a.state == ReplicaState::ReplicaFinalized);
    if let Some(f) = finalized.next() {
        if let Some(other) = finalized.find(|o| o.len != f.len) {
            return Err(format!(
                "finalized replicas disagree on the length: {} bytes on {}, {} bytes on {}",
                f.len, f.addr, other.len, other.addr
            ));
        }
        return Ok(Some((f.len, answers.iter().filter(|a| a.len >= f.len).collect())));
    }
    let Some(min) = answers.iter().map(|a| a.len).min() else { return Ok(None) };
    Ok(Some((min, answers.iter().collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(uuid: &str, state: ReplicaState, len: u64) -> ReplicaAnswer {
        ReplicaAnswer { uuid: uuid.into(), addr: format!("{uuid}:1"), state, len }
    }

    fn uuids(parts: &[&ReplicaAnswer]) -> Vec<String> {
        parts.iter().map(|a| a.uuid.clone()).collect()
    }

    #[test]
    fn rbw_replicas_agree_on_the_shortest() {
        let a = [
            answer("a", ReplicaState::ReplicaRbw, 3000),
            answer("b", ReplicaState::ReplicaRbw, 1024),
            answer("c", ReplicaState::ReplicaRbw, 2048),
        ];
        let (len, parts) = choose_length(&a).unwrap().unwrap();
        assert_eq!(len, 1024);
        assert_eq!(uuids(&parts), vec!["a", "b", "c"]);
        assert!(choose_length(&[]).unwrap().is_none());
    }

    #[test]
    fn a_finalized_replica_sets_the_length_and_shorter_ones_drop_out() {
        let a = [
            answer("a", ReplicaState::ReplicaRbw, 3000),
            answer("b", ReplicaState::ReplicaRbw, 1024),
            answer("c", ReplicaState::ReplicaFinalized, 2048),
        ];
        let (len, parts) = choose_length(&a).unwrap().unwrap();
        assert_eq!(len, 2048);
        assert_eq!(uuids(&parts), vec!["a", "c"]);
    }

    #[test]
    fn finalized_replicas_of_different_lengths_are_not_committed() {
        let a = [
            answer("a", ReplicaState::ReplicaFinalized, 2048),
            answer("b", ReplicaState::ReplicaRbw, 4096),
            answer("c", ReplicaState::ReplicaFinalized, 1024),
        ];
        let e = choose_length(&a).unwrap_err();
        assert!(e.contains("disagree") && e.contains("a:1") && e.contains("c:1"), "{e}");
    }
}
