//! The plain values a [`Client`](crate::Client) hands out, and their
//! conversions from the wire types.

use tusk_proto::dfs;

/// How [`Client::create`](crate::Client::create) makes a file.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Replace an existing (closed) file.
    pub overwrite: bool,
    /// Create missing parent directories.
    pub create_parent: bool,
    /// Replicas per block; `None` means the cluster default.
    pub replication: Option<u32>,
    /// Bytes per block; `None` means the cluster default.
    pub block_size: Option<u64>,
    /// Permission bits; `None` means 0666 & !umask.
    pub permission: Option<u32>,
}

/// Where one block of a file is stored (Hadoop's `BlockLocation`), for
/// placing work next to its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockLocation {
    /// Offset of the block's first byte in the file.
    pub offset: u64,
    /// Bytes in the block.
    pub length: u64,
    /// Transfer addresses (`host:port`) of the datanodes holding a replica,
    /// the nearest to the caller first.
    pub hosts: Vec<String>,
    /// Racks of those datanodes, without repeats.
    pub racks: Vec<String>,
}

impl BlockLocation {
    pub(crate) fn from_proto(b: &dfs::LocatedBlock) -> BlockLocation {
        let mut racks: Vec<String> = Vec::new();
        for d in &b.locations {
            if !d.rack.is_empty() && !racks.contains(&d.rack) {
                racks.push(d.rack.clone());
            }
        }
        BlockLocation {
            offset: b.offset,
            length: b.block.map(|e| e.num_bytes).unwrap_or(0),
            hosts: b.locations.iter().map(|d| d.transfer_addr.clone()).collect(),
            racks,
        }
    }
}

/// What the namenode knows about a file or directory.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStatus {
    /// Full path.
    pub path: String,
    /// Last component ("" for the root).
    pub name: String,
    pub is_dir: bool,
    pub length: u64,
    pub replication: u32,
    pub block_size: u64,
    pub modification_time_ms: i64,
    pub access_time_ms: i64,
    /// POSIX permission bits (sticky bit 0o1000 included).
    pub permission: u32,
    pub owner: String,
    pub group: String,
    pub children_count: u32,
    /// The file is open for writing.
    pub under_construction: bool,
}

/// Totals over a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContentSummary {
    pub length: u64,
    pub file_count: u64,
    pub directory_count: u64,
    /// Sum over files of length × replication.
    pub space_consumed: u64,
}

/// One datanode as the namenode sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatanodeInfo {
    pub uuid: String,
    /// `host:port` of its block streaming server.
    pub transfer_addr: String,
    pub host: String,
    /// Network location from the namenode's topology (`/default-rack` without one).
    pub rack: String,
    /// Whether the node is being (or has been) decommissioned.
    pub admin_state: AdminState,
    /// While decommissioning: its blocks that still lack replicas elsewhere.
    pub blocks_pending_decommission: u64,
    pub capacity: u64,
    pub dfs_used: u64,
    pub remaining: u64,
    /// Milliseconds since the Unix epoch of its last heartbeat.
    pub last_contact_ms: i64,
    pub live: bool,
    pub num_blocks: u64,
    /// Active data transfers.
    pub xceivers: u32,
}

/// A datanode's administrative state (HDFS "Decommission Status").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdminState {
    /// In service.
    #[default]
    Normal,
    /// Its replicas are being copied elsewhere; it takes no new blocks.
    DecommissionInProgress,
    /// Every replica it held has enough replicas elsewhere.
    Decommissioned,
}

impl AdminState {
    pub(crate) fn from_proto(v: i32) -> AdminState {
        use dfs::datanode_info::AdminState as W;
        match W::try_from(v) {
            Ok(W::DecommissionInProgress) => AdminState::DecommissionInProgress,
            Ok(W::Decommissioned) => AdminState::Decommissioned,
            _ => AdminState::Normal,
        }
    }
}

/// The cluster's defaults for new files and the transfer protocol.
#[derive(Debug, Clone)]
pub struct ServerDefaults {
    pub block_size: u64,
    pub replication: u32,
    pub bytes_per_checksum: u32,
    pub packet_size: u32,
    pub cluster_id: String,
}

impl FileStatus {
    /// `status` of the entry at the full path `path`.
    pub(crate) fn from_proto(path: String, status: dfs::FileStatus) -> FileStatus {
        let name = if status.name.is_empty() {
            tusk_common::path::file_name(&path).to_string()
        } else {
            status.name
        };
        FileStatus {
            path,
            name,
            is_dir: status.file_type == dfs::file_status::FileType::Directory as i32,
            length: status.length,
            replication: status.replication,
            block_size: status.block_size,
            modification_time_ms: status.modification_time_ms,
            access_time_ms: status.access_time_ms,
            permission: status.permission,
            owner: status.owner,
            group: status.group,
            children_count: status.children_count,
            under_construction: status.under_construction,
        }
    }
}

impl From<dfs::ContentSummary> for ContentSummary {
    fn from(s: dfs::ContentSummary) -> Self {
        ContentSummary {
            length: s.length,
            file_count: s.file_count,
            directory_count: s.directory_count,
            space_consumed: s.space_consumed,
        }
    }
}

impl From<dfs::DatanodeInfo> for DatanodeInfo {
    fn from(d: dfs::DatanodeInfo) -> Self {
        let id = d.id.unwrap_or_default();
        DatanodeInfo {
            uuid: id.datanode_uuid,
            transfer_addr: id.transfer_addr,
            host: id.host,
            rack: id.rack,
            admin_state: AdminState::from_proto(d.admin_state),
            blocks_pending_decommission: d.blocks_pending_decommission,
            capacity: d.capacity,
            dfs_used: d.dfs_used,
            remaining: d.remaining,
            last_contact_ms: d.last_contact_ms,
            live: d.state == dfs::datanode_info::State::Live as i32,
            num_blocks: d.num_blocks,
            xceivers: d.xceivers,
        }
    }
}

impl ServerDefaults {
    pub(crate) fn from_proto(d: dfs::ServerDefaultsResponse) -> ServerDefaults {
        use tusk_proto::transfer::{DEFAULT_BYTES_PER_CHECKSUM, DEFAULT_PACKET_SIZE};
        let nonzero = |v: u32, d: u32| if v == 0 { d } else { v };
        ServerDefaults {
            block_size: d.block_size,
            replication: d.replication,
            bytes_per_checksum: nonzero(d.bytes_per_checksum, DEFAULT_BYTES_PER_CHECKSUM),
            packet_size: nonzero(d.packet_size, DEFAULT_PACKET_SIZE),
            cluster_id: d.cluster_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_convert_with_full_path_and_name() {
        let p = dfs::FileStatus {
            name: "f".into(),
            file_type: dfs::file_status::FileType::File as i32,
            length: 7,
            permission: 0o644,
            owner: "alice".into(),
            ..Default::default()
        };
        let s = FileStatus::from_proto("/a/f".into(), p);
        assert_eq!((s.path.as_str(), s.name.as_str(), s.is_dir, s.length), ("/a/f", "f", false, 7));
        let d = dfs::FileStatus { file_type: dfs::file_status::FileType::Directory as i32, ..Default::default() };
        let s = FileStatus::from_proto("/a/b".into(), d);
        assert!(s.is_dir);
        assert_eq!(s.name, "b");
    }

    #[test]
    fn block_locations_list_replica_addresses_and_distinct_racks() {
        let dn = |addr: &str, rack: &str| dfs::DatanodeId { transfer_addr: addr.into(), rack: rack.into(), ..Default::default() };
        let b = dfs::LocatedBlock {
            block: Some(dfs::ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 42 }),
            offset: 128,
            locations: vec![dn("a:1", "/r1"), dn("b:1", "/r2"), dn("c:1", "/r1")],
        };
        let l = BlockLocation::from_proto(&b);
        assert_eq!((l.offset, l.length), (128, 42));
        assert_eq!(l.hosts, vec!["a:1", "b:1", "c:1"]);
        assert_eq!(l.racks, vec!["/r1", "/r2"]);
    }

    #[test]
    fn dead_datanodes_are_not_live() {
        let d = dfs::DatanodeInfo { state: dfs::datanode_info::State::Dead as i32, ..Default::default() };
        assert!(!DatanodeInfo::from(d).live);
        assert!(DatanodeInfo::from(dfs::DatanodeInfo::default()).live);
    }

    #[test]
    fn datanodes_carry_rack_and_admin_state() {
        let d = dfs::DatanodeInfo {
            id: Some(dfs::DatanodeId { rack: "/r1".into(), ..Default::default() }),
            admin_state: dfs::datanode_info::AdminState::DecommissionInProgress as i32,
            blocks_pending_decommission: 4,
            ..Default::default()
        };
        let d = DatanodeInfo::from(d);
        assert_eq!((d.rack.as_str(), d.admin_state, d.blocks_pending_decommission), ("/r1", AdminState::DecommissionInProgress, 4));
        let d = dfs::DatanodeInfo { admin_state: 2, ..Default::default() };
        assert_eq!(DatanodeInfo::from(d).admin_state, AdminState::Decommissioned);
        let d = dfs::DatanodeInfo { admin_state: 99, ..Default::default() };
        assert_eq!(DatanodeInfo::from(d).admin_state, AdminState::Normal);
    }
}
