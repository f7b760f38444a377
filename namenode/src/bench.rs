//! Memory benchmark hook: how many bytes the namenode needs per file with
//! one block (three replica locations), measured as RSS growth.

use tusk_proto::dfs::{Caller, DatanodeId, ExtendedBlock, ReplicaReport, StorageReport};

use crate::config::NamenodeConfig;
use crate::error::NamenodeError;
use crate::namesystem::Namesystem;

/// Result of [`memory_per_file`].
#[derive(Debug, Clone)]
pub struct MemoryReport {
    /// Files created (each with one block).
    pub files: u64,
    /// Blocks in the block map.
    pub blocks: u64,
    /// Resident set growth while creating them, in bytes.
    pub bytes_total: u64,
    /// `bytes_total / files`.
    pub bytes_per_file: f64,
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Builds a fresh in-memory namespace of `files` files (1000 per directory),
/// each with one 1 MiB block reported by 3 datanodes, and reports the RSS
/// growth per file+block. No RPC and no disk are involved.
pub fn memory_per_file(files: u64) -> Result<MemoryReport, NamenodeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| NamenodeError::Internal(format!("bench runtime: {e}")))?;
    let conf = NamenodeConfig::default();
    let ns = Namesystem::in_memory(conf, "bench");
    let uuids: Vec<String> = (1..=3).map(|i| format!("bench-dn-{i}")).collect();
    for (i, u) in uuids.iter().enumerate() {
        let id = DatanodeId { datanode_uuid: u.clone(), transfer_addr: format!("10.0.0.{i}:9866"), host: format!("10.0.0.{i}"), ..Default::default() };
        let storage = StorageReport { capacity: u64::MAX / 2, dfs_used: 0, remaining: u64::MAX / 2 };
        ns.register_datanode(tusk_proto::PROTOCOL_VERSION, id, "", storage)?;
    }
    let caller = Caller { user: "bench".into(), groups: vec![], client_name: "DFSClient_bench".into() };
    let before = rss_bytes();
    rt.block_on(async {
        for i in 0..files {
            let dir = format!("/bench/d{:06}", i / 1000);
            if i % 1000 == 0 {
                ns.mkdirs(&caller, &dir, 0, true).await?;
            }
            let path = format!("{dir}/f{:06}", i % 1000);
            ns.create(&caller, &path, 0, false, false, 3, 0).await?;
            let b = ns.add_block(&caller, &path, None, &[], "").await?;
            let blk = b.block.unwrap_or_default();
            let rep = ReplicaReport { block_id: blk.block_id, generation_stamp: blk.generation_stamp, num_bytes: 1 << 20 };
            for u in &uuids {
                ns.incremental_report(u, std::slice::from_ref(&rep), &[])?;
            }
            let last = ExtendedBlock { num_bytes: 1 << 20, ..blk };
            if !ns.complete(&caller, &path, Some(&last)).await? {
                return Err(NamenodeError::Internal(format!("{path}: not complete")));
            }
        }
        Ok::<_, NamenodeError>(())
    })?;
    let after = rss_bytes();
    let blocks = ns.state.read().blocks.len() as u64;
    let bytes_total = after.saturating_sub(before);
    Ok(MemoryReport { files, blocks, bytes_total, bytes_per_file: bytes_total as f64 / files.max(1) as f64 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_namespace_reports_sane_numbers() {
        let r = super::memory_per_file(20_000).unwrap();
        assert_eq!(r.files, 20_000);
        assert_eq!(r.blocks, 20_000);
        // RSS is process-wide and other tests run in parallel, so the real
        // figure comes from `tusk bench nn --op memory`, run alone.
    }
}
