//! [`FileWriter`]: streams a new file's bytes through datanode pipelines,
//! one block at a time.

mod packet;
mod pipeline;
mod recovery;

use std::time::Duration;
use tokio::time::Instant;
use tusk_proto::dfs::{self, DatanodeId, ExtendedBlock};

use crate::error::{ClientError, Result};
use crate::fs::{Client, ServerDefaults};
use crate::lease_renewer::LeaseGuard;
use packet::PacketAssembler;
use pipeline::{Pipeline, PipelineFailure, Stage};
use recovery::RecoveryState;

/// Pipeline setups tried for a new block (each failure abandons the block
/// and excludes the datanode that failed), as HDFS `dfs.client.block.write.retries`.
const BLOCK_SETUP_ATTEMPTS: usize = 3;
/// How long a datanode that failed a pipeline setup is excluded from this
/// file's new blocks (HDFS `dfs.client.write.exclude.nodes.cache.expiry.interval.millis`).
const EXCLUDE_EXPIRY: Duration = Duration::from_secs(600);

/// First wait between `complete` calls that answer "not yet".
const COMPLETE_FIRST_DELAY: Duration = Duration::from_millis(10);
/// Longest wait between `complete` calls.
const COMPLETE_MAX_DELAY: Duration = Duration::from_millis(400);
/// How long `close` waits for the last block's minimum replicas.
const COMPLETE_DEADLINE: Duration = Duration::from_secs(30);

/// Writes a file created by [`Client::create`]. Bytes are buffered into
/// packets and streamed while acks return; [`close`](Self::close) makes the
/// file visible as complete. Dropping a writer without closing it leaves the
/// file under construction until its lease expires on the namenode.
pub struct FileWriter {
    client: Client,
    path: String,
    packets: PacketAssembler,
    /// The block being written, with its pipeline.
    current: Option<OpenBlock>,
    /// The last finished block, with its final length.
    previous: Option<ExtendedBlock>,
    /// The file's replication (the pipeline size pipeline recovery restores).
    replication: u32,
    /// Datanodes (uuid, when) that failed a pipeline setup.
    excluded: Vec<(String, Instant)>,
    bytes_written: u64,
    /// Set once a write failed; the writer is unusable after that.
    failed: Option<String>,
    _lease: LeaseGuard,
}

struct OpenBlock {
    /// The block with its current generation stamp (new after each recovery).
    block: ExtendedBlock,
    pipeline: Pipeline,
    /// The pipeline's datanodes, in order.
    nodes: Vec<DatanodeId>,
    /// Failed datanodes and recovery attempts of this block.
    recovery: RecoveryState,
}

/// `blk_<id>_<generation stamp>`, as blocks are named in messages.
pub(crate) fn block_name(b: &ExtendedBlock) -> String {
    format!("blk_{}_{}", b.block_id, b.generation_stamp)
}

impl FileWriter {
    pub(crate) fn new(
        client: Client,
        path: String,
        block_size: u64,
        replication: u32,
        defaults: &ServerDefaults,
    ) -> FileWriter {
        let lease = client.register_writer();
        FileWriter {
            packets: PacketAssembler::new(block_size, defaults.packet_size, defaults.bytes_per_checksum),
            client,
            path,
            current: None,
            previous: None,
            replication: replication.max(1),
            excluded: Vec::new(),
            bytes_written: 0,
            failed: None,
            _lease: lease,
        }
    }

    /// Appends `data`. Full packets are sent at once; blocks are ended and
    /// new ones allocated as their size is reached.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_usable()?;
        let r = self.write_inner(data).await;
        self.note_failure(&r);
        r
    }

    /// Bytes accepted by [`write`](Self::write) so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Sends what is buffered, ends the last block and completes the file,
    /// waiting (with backoff, up to 30 s) until the namenode has the last
    /// block's minimum replicas. Returns the file length.
    pub async fn close(mut self) -> Result<u64> {
        self.check_usable()?;
        self.flush_packet().await?;
        self.end_block().await?;
        self.complete().await?;
        Ok(self.bytes_written)
    }

    /// Gives up on the file: abandons the block being written and deletes
    /// the file. Best effort; only the delete's failure is reported.
    pub async fn abort(mut self) -> Result<()> {
        if let Some(open) = self.current.take() {
            drop(open.pipeline);
            let rpc = self.client.rpc();
            let req = dfs::AbandonBlockRequest { caller: rpc.caller(), path: self.path.clone(), block: Some(open.block) };
            if let Err(s) = rpc.stub().abandon_block(req).await {
                tracing::debug!("{}: abandoning block: {}", self.path, rpc.error(s));
            }
        }
        self.client.delete(&self.path, false).await?;
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(ClientError::InvalidArgument {
                path: self.path.clone(),
                message: format!("the writer failed earlier: {why}"),
            }),
            None => Ok(()),
        }
    }

    fn note_failure<T>(&mut self, r: &Result<T>) {
        if let Err(e) = r {
            self.failed = Some(e.to_string());
            // Drop the pipeline: nothing more can be sent on it.
            self.current = None;
        }
    }

    async fn write_inner(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.packets.fill(rest);
            rest = &rest[n..];
            self.bytes_written += n as u64;
            if self.packets.ready() {
                self.flush_packet().await?;
            }
            if self.packets.block_full() {
                self.end_block().await?;
            }
        }
        Ok(())
    }

    /// Sends the buffered bytes (if any) as a packet, opening a block first
    /// when none is open.
    async fn flush_packet(&mut self) -> Result<()> {
        let Some(packet) = self.packets.take_packet() else { return Ok(()) };
        if self.current.is_none() {
            let r = self.start_block().await;
            self.note_failure(&r);
            self.current = Some(r?);
        }
        let Some(open) = self.current.as_mut() else { return Ok(()) };
        if let Err(f) = open.pipeline.send(packet).await {
            // The failed packet is among the unacknowledged ones recovery resends.
            let r = self.recover(f).await;
            self.note_failure(&r);
            r?;
        }
        Ok(())
    }

    /// Ends the open block (if any): the empty last packet, then every ack.
    async fn end_block(&mut self) -> Result<()> {
        if self.packets.block_pos() == 0 && self.current.is_none() {
            return Ok(());
        }
        let (last, len) = self.packets.end_block();
        let Some(open) = self.current.as_mut() else { return Ok(()) };
        let mut acked = open.pipeline.finish(last).await;
        while let Err(f) = acked {
            // Recovery resends the last packet too; then wait for its ack.
            let r = self.recover(f).await;
            self.note_failure(&r);
            r?;
            let Some(open) = self.current.as_mut() else { return Ok(()) };
            acked = open.pipeline.wait_acked().await;
        }
        if let Some(open) = self.current.take() {
            self.previous = Some(ExtendedBlock { num_bytes: len, ..open.block });
        }
        Ok(())
    }

    /// Allocates the next block and sets up its pipeline. A datanode that
    /// refuses the setup is excluded (for [`EXCLUDE_EXPIRY`], for every later
    /// block of this file too), the block abandoned and a new one allocated,
    /// up to [`BLOCK_SETUP_ATTEMPTS`] times.
    async fn start_block(&mut self) -> Result<OpenBlock> {
        let (io_timeout, window) = self.pipeline_settings();
        let mut failed_addrs: Vec<String> = Vec::new();
        let mut attempt = 1;
        loop {
            let excluded = self.excluded_uuids();
            let located = self.add_block(&excluded).await?;
            let Some(block) = located.block else {
                return Err(ClientError::Block {
                    path: self.path.clone(),
                    op: "allocate",
                    block: "?".into(),
                    message: "the namenode answered without a block".into(),
                });
            };
            let name = self.client.client_name();
            let f = match Pipeline::open(&block, &located.locations, name, io_timeout, window, Stage::Create).await {
                Ok(pipeline) => {
                    let recovery = RecoveryState::new(self.replication);
                    return Ok(OpenBlock { block, pipeline, nodes: located.locations, recovery });
                }
                Err(f) => f,
            };
            self.abandon(&block).await;
            let bad_uuid = f.bad_node.as_deref().and_then(|addr| {
                located.locations.iter().find(|d| d.transfer_addr == addr).map(|d| d.datanode_uuid.clone())
            });
            failed_addrs.extend(f.bad_node.clone());
            let Some(uuid) = bad_uuid else { return Err(pipeline_error(&self.path, &block, f)) };
            if attempt >= BLOCK_SETUP_ATTEMPTS {
                let message = format!(
                    "{} (pipeline setup failed {BLOCK_SETUP_ATTEMPTS} times; failed datanodes: {})",
                    f.message,
                    failed_addrs.join(", ")
                );
                return Err(pipeline_error(&self.path, &block, PipelineFailure { message, ..f }));
            }
            tracing::warn!(
                "{}: abandoned {} and excluding the datanode after a failed pipeline setup: {f}",
                self.path,
                block_name(&block)
            );
            self.excluded.push((uuid, Instant::now()));
            attempt += 1;
        }
    }

    /// Datanodes that failed a pipeline setup of this file recently.
    fn excluded_uuids(&mut self) -> Vec<String> {
        self.excluded.retain(|(_, at)| at.elapsed() < EXCLUDE_EXPIRY);
        let mut uuids: Vec<String> = self.excluded.iter().map(|(u, _)| u.clone()).collect();
        uuids.sort();
        uuids.dedup();
        uuids
    }

    /// Socket timeout and packet window of a pipeline.
    fn pipeline_settings(&self) -> (Duration, usize) {
        let config = self.client.config();
        (Duration::from_millis(config.socket_timeout_ms.max(1)), config.max_packets_in_flight.max(1))
    }

    async fn add_block(&self, excluded: &[String]) -> Result<dfs::LocatedBlock> {
        let rpc = self.client.rpc();
        let req = dfs::AddBlockRequest {
            caller: rpc.caller(),
            path: self.path.clone(),
            previous: self.previous,
            excluded_uuids: excluded.to_vec(),
            client_host: String::new(),
        };
        let resp = rpc.stub().add_block(req).await.map_err(|s| rpc.error(s))?.into_inner();
        resp.block.ok_or_else(|| ClientError::Block {
            path: self.path.clone(),
            op: "allocate",
            block: "?".into(),
            message: "the namenode answered without a block".into(),
        })
    }

    async fn abandon(&self, block: &ExtendedBlock) {
        let rpc = self.client.rpc();
        let req = dfs::AbandonBlockRequest { caller: rpc.caller(), path: self.path.clone(), block: Some(*block) };
        if let Err(s) = rpc.stub().abandon_block(req).await {
            tracing::warn!("{}: abandoning {}: {}", self.path, block_name(block), rpc.error(s));
        }
    }

    /// `complete` until the namenode says yes, with doubling waits.
    async fn complete(&self) -> Result<()> {
        let rpc = self.client.rpc();
        let deadline = Instant::now() + COMPLETE_DEADLINE;
        let mut delay = COMPLETE_FIRST_DELAY;
        loop {
            let req = dfs::CompleteRequest { caller: rpc.caller(), path: self.path.clone(), last: self.previous };
            let resp = rpc.stub().complete(req).await.map_err(|s| rpc.error(s))?.into_inner();
            if resp.completed {
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                return Err(ClientError::Block {
                    path: self.path.clone(),
                    op: "complete",
                    block: self.previous.as_ref().map(block_name).unwrap_or_else(|| "-".into()),
                    message: format!("the namenode still lacks its minimum replicas after {COMPLETE_DEADLINE:?}"),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(COMPLETE_MAX_DELAY);
        }
    }
}

fn pipeline_error(path: &str, block: &ExtendedBlock, f: PipelineFailure) -> ClientError {
    ClientError::Block { path: path.to_string(), op: "write", block: block_name(block), message: f.to_string() }
}
