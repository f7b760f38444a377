//! Write pipeline recovery, namenode side: a writer whose pipeline lost a
//! datanode gets a new generation stamp for its block (durable before the
//! answer, so replicas still carrying the old stamp are recognisably
//! stale), may ask for replacement datanodes, and finally tells the
//! namenode which datanodes now carry the block.

use tusk_proto::dfs::{Caller, DatanodeId, ExtendedBlock};
use tusk_proto::error::ErrorKind;
use tusk_proto::nnstorage::{self as ns, edit_op::Op};

use super::{Namesystem, normalize};
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};
use crate::namespace::FsState;
use crate::namespace::ops::{Ctx, edit};

/// Checks that `block` is the last block of `p`, open for writing by the
/// caller, with the generation stamp the namenode has; returns the file id.
fn current_block(st: &FsState, ctx: &Ctx<'_>, p: &str, block: &ExtendedBlock) -> Result<u64> {
    let file = st.writable_file(ctx, p)?;
    let last = st.inode(file)?.file().and_then(|f| f.blocks.last());
    if last != Some(block.block_id) {
        return Err(NamenodeError::invalid(format!("{p}: block {} is not the file's last block", block.block_id)));
    }
    let b = st.blocks.get(block.block_id).ok_or_else(|| NamenodeError::Internal(format!("block {} missing", block.block_id)))?;
    if b.gen_stamp != block.generation_stamp {
        return Err(NamenodeError::invalid(format!(
            "{p}: block {} has generation stamp {}, not {}",
            block.block_id, b.gen_stamp, block.generation_stamp
        )));
    }
    Ok(file)
}

impl Namesystem {
    /// Gives the block being written a new generation stamp (logged).
    pub(crate) async fn update_block_for_pipeline(&self, caller: &Caller, path: &str, block: &ExtendedBlock) -> Result<ExtendedBlock> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        let updated = self
            .mutate_with(|st, removed| {
                current_block(st, &ctx, &p, block)?;
                let num_bytes = st.blocks.get(block.block_id).map(|b| b.num_bytes).unwrap_or(0);
                let new_gs = st.next_gen_stamp;
                let op = edit(Op::UpdateBlock(ns::OpUpdateBlock {
                    path: p.clone(),
                    block: Some(ns::BlockRecord { block_id: block.block_id, generation_stamp: new_gs, num_bytes }),
                }));
                let txid = self.commit(st, &[op], removed)?;
                Ok((txid, ExtendedBlock { generation_stamp: new_gs, ..*block }))
            })
            .await?;
        tracing::info!(
            "{p}: pipeline recovery of block {}: generation stamp {} -> {}",
            block.block_id,
            block.generation_stamp,
            updated.generation_stamp
        );
        Ok(updated)
    }

    /// Records the datanodes of the recovered pipeline as the block's
    /// expected locations.
    pub(crate) fn update_pipeline(&self, caller: &Caller, path: &str, block: &ExtendedBlock, uuids: &[String]) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        let st = self.state.read();
        current_block(&st, &ctx, &p, block)?;
        let dm = self.datanodes.lock();
        let targets: Vec<DnIndex> = uuids.iter().filter_map(|u| dm.live_index(u)).collect();
        drop(dm);
        self.uc.lock().set_expected(block.block_id, targets);
        Ok(())
    }

    /// Chooses up to `n` datanodes to join the pipeline of `block`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn get_additional_datanode(
        &self,
        caller: &Caller,
        path: &str,
        block: &ExtendedBlock,
        existing: &[String],
        excluded: &[String],
        n: u32,
        client_host: &str,
    ) -> Result<Vec<DatanodeId>> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        let st = self.state.read();
        let file = current_block(&st, &ctx, &p, block)?;
        let block_size = st.inode(file)?.file().map(|f| f.block_size).unwrap_or(self.conf.default_block_size);
        let mut dm = self.datanodes.lock();
        let existing: Vec<DnIndex> = existing.iter().filter_map(|u| dm.live_index(u)).collect();
        let chosen = dm.choose_additional(&existing, n as usize, block_size, client_host, excluded);
        dm.add_scheduled(&chosen);
        if chosen.is_empty() && n > 0 {
            return Err(NamenodeError::req(
                ErrorKind::NoDatanodes,
                format!("{p}: no other datanode can join the pipeline of block {} ({} live)", block.block_id, dm.live_count()),
            ));
        }
        Ok(chosen.iter().filter_map(|i| dm.get(*i)).map(|d| d.id.clone()).collect())
    }
}
