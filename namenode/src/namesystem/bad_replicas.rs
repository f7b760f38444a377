//! ReportBadBlocks (from clients after a checksum error and from datanode
//! block scanners): the replica is marked corrupt, stops being served and
//! counted, and the replication monitor re-replicates the block from a good
//! replica before deleting the corrupt one.

use tusk_proto::dfs::BadReplica;

use super::Namesystem;
use crate::error::{NamenodeError, Result};

impl Namesystem {
    /// Marks each reported replica corrupt when the namenode knows it at
    /// the reported generation stamp; others are ignored (logged).
    pub(crate) fn report_bad_blocks(&self, replicas: &[BadReplica]) -> Result<()> {
        for bad in replicas {
            if bad.block.is_none() || bad.datanode_uuid.is_empty() {
                return Err(NamenodeError::invalid("report_bad_blocks: every replica needs a block and a datanode uuid"));
            }
        }
        let st = self.state.read();
        let dm = self.datanodes.lock();
        let mut repl = self.repl.lock();
        for bad in replicas {
            let Some(blk) = &bad.block else { continue };
            let id = blk.block_id;
            let Some(dn) = dm.index(&bad.datanode_uuid) else {
                tracing::warn!("bad replica of block {id} on unknown datanode {} ignored", bad.datanode_uuid);
                continue;
            };
            let Some(b) = st.blocks.get(id) else {
                tracing::info!("bad replica of block {id} ignored: the block is not in the namespace");
                continue;
            };
            if blk.generation_stamp != b.gen_stamp {
                tracing::info!(
                    "bad replica of block {id} on {} ignored: generation stamp {} is not the block's {}",
                    bad.datanode_uuid,
                    blk.generation_stamp,
                    b.gen_stamp
                );
                continue;
            }
            if !b.replicas.contains(dn) {
                tracing::info!("bad replica of block {id} on {} ignored: no such replica is known", bad.datanode_uuid);
                continue;
            }
            if repl.mark_corrupt(id, dn, b.gen_stamp) {
                let addr = dm.get(dn).map(|d| d.id.transfer_addr.as_str()).unwrap_or("");
                tracing::warn!("replica of block {id} on {} ({addr}) is corrupt: {}", bad.datanode_uuid, bad.reason);
            }
            if self.noting() {
                repl.note(id);
            }
        }
        Ok(())
    }
}
