//! Crate tests that span several modules.

mod decommission;
mod durability;
mod fsck;
mod leases;
mod namespace_ops;
mod replication;

use std::path::Path;

use tusk_proto::dfs::{Caller, DatanodeId, ReplicaReport, StorageReport};
use tusk_proto::error::ErrorKind;

use crate::config::NamenodeConfig;
use crate::error::NamenodeError;
use crate::namesystem::Namesystem;

pub(crate) fn caller(user: &str, client: &str) -> Caller {
    Caller { user: user.into(), groups: vec![format!("{user}-group")], client_name: client.into() }
}

pub(crate) fn su() -> Caller {
    caller("root", "DFSClient_root")
}

pub(crate) fn conf(dir: &Path) -> NamenodeConfig {
    NamenodeConfig { name_dir: dir.to_path_buf(), rpc_addr: "127.0.0.1:0".into(), ..Default::default() }
}

pub(crate) fn kind<T: std::fmt::Debug>(r: Result<T, NamenodeError>) -> ErrorKind {
    r.unwrap_err().kind()
}

pub(crate) fn add_datanode(ns: &Namesystem, n: u8) -> String {
    let uuid = format!("dn-{n}");
    let id = DatanodeId { datanode_uuid: uuid.clone(), transfer_addr: format!("127.0.0.{n}:9866"), host: format!("127.0.0.{n}"), ..Default::default() };
    ns.register_datanode(tusk_proto::PROTOCOL_VERSION, id, "", StorageReport { capacity: 1 << 40, dfs_used: 0, remaining: 1 << 40 })
        .unwrap();
    uuid
}

/// Writes a one-block file as `c` and reports the replica from `dn`.
pub(crate) async fn write_file(ns: &Namesystem, c: &Caller, path: &str, len: u64, dn: &str) {
    ns.create(c, path, 0, false, true, 1, 0).await.unwrap();
    let b = ns.add_block(c, path, None, &[], "").await.unwrap().block.unwrap();
    let rep = ReplicaReport { block_id: b.block_id, generation_stamp: b.generation_stamp, num_bytes: len };
    ns.incremental_report(dn, &[rep], &[]).unwrap();
    let last = tusk_proto::dfs::ExtendedBlock { num_bytes: len, ..b };
    assert!(ns.complete(c, path, Some(&last)).await.unwrap());
}
