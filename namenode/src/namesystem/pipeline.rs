//! Write pipeline recovery, namenode side (as HDFS): a writer whose
//! pipeline lost a datanode gets a new generation stamp for its block
//! (reserved durably, the block keeps its stamp), may ask for replacement
//! datanodes, reopens the pipeline with the new stamp, and then tells the
//! namenode (`UpdatePipeline`), which gives the block the new stamp in the
//! log: from then on replicas with the old stamp are stale. Were the writer
//! to die between the two, the block's stamp is still one every surviving
//! replica has reached, so a block recovery finds them all.

use tusk_proto::dfs::{Caller, DatanodeId, ExtendedBlock};
use tusk_proto::error::ErrorKind;
use tusk_proto::nnstorage::{self as ns, edit_op::Op};

use super::{Namesystem, normalize};
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};
use crate::namespace::FsState;
use crate::namespace::ops::{Ctx, edit};

/// Which generation stamps of the block a pipeline call accepts.
#[derive(Clone, Copy, PartialEq)]
enum Stamp {
    /// The block's stamp, or one handed out for its recovery since.
    CurrentOrReserved,
    /// A stamp handed out since (UpdatePipeline).
    Reserved,
}

/// Checks that `block` is the last block of `p`, open for writing by the
/// caller, with a generation stamp `rule` accepts; returns the file id.
fn current_block(st: &FsState, ctx: &Ctx<'_>, p: &str, block: &ExtendedBlock, rule: Stamp) -> Result<u64> {
    let file = st.writable_file(ctx, p)?;
    let last = st.inode(file)?.file().and_then(|f| f.blocks.last());
    if last != Some(block.block_id) {
        return Err(NamenodeError::invalid(format!("{p}: block {} is not the file's last block", block.block_id)));
    }
    let b = st.blocks.get(block.block_id).ok_or_else(|| NamenodeError::Internal(format!("block {} missing", block.block_id)))?;
    let gs = block.generation_stamp;
    let ok = match rule {
        Stamp::CurrentOrReserved => gs >= b.gen_stamp && gs < st.next_gen_stamp,
        Stamp::Reserved => gs > b.gen_stamp && gs < st.next_gen_stamp,
    };
    if !ok {
        return Err(NamenodeError::invalid(format!(
            "{p}: block {} has generation stamp {}; {gs} is stale or was never handed out",
            block.block_id, b.gen_stamp
        )));
    }
    Ok(file)
}

impl Namesystem {
    /// Hands out a new generation stamp for the block being written
    /// (logged); the block takes it at [`update_pipeline`](Self::update_pipeline).
    pub(crate) async fn update_block_for_pipeline(&self, caller: &Caller, path: &str, block: &ExtendedBlock) -> Result<ExtendedBlock> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        let updated = self
            .mutate_with(|st, removed| {
                let file = current_block(st, &ctx, &p, block, Stamp::CurrentOrReserved)?;
                self.check_not_recovering(st, &p, file)?;
                let new_gs = st.next_gen_stamp;
                let op = edit(Op::SetGenStamp(ns::OpSetGenStamp { gen_stamp: new_gs }));
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

    /// The recovered pipeline is open: the block takes its new stamp (logged;
    /// replicas with an older one are stale from now on) and the pipeline's
    /// datanodes become its expected locations.
    pub(crate) async fn update_pipeline(&self, caller: &Caller, path: &str, block: &ExtendedBlock, uuids: &[String]) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate_with(|st, removed| {
            let file = current_block(st, &ctx, &p, block, Stamp::Reserved)?;
            self.check_not_recovering(st, &p, file)?;
            let num_bytes = st.blocks.get(block.block_id).map(|b| b.num_bytes).unwrap_or(0);
            let op = edit(Op::UpdateBlock(ns::OpUpdateBlock {
                path: p.clone(),
                block: Some(ns::BlockRecord { block_id: block.block_id, generation_stamp: block.generation_stamp, num_bytes }),
            }));
            let txid = self.commit(st, &[op], removed)?;
            let dm = self.datanodes.lock();
            let targets: Vec<DnIndex> = uuids.iter().filter_map(|u| dm.live_index(u)).collect();
            drop(dm);
            self.uc.lock().set_expected(block.block_id, targets);
            Ok((txid, ()))
        })
        .await?;
        tracing::info!("{p}: block {} now has generation stamp {} on {} datanodes", block.block_id, block.generation_stamp, uuids.len());
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
        let file = current_block(&st, &ctx, &p, block, Stamp::CurrentOrReserved)?;
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
