#![doc = include_str!("../README.md")]

mod config;
mod datanode_op;
mod error;
#[cfg(test)]
mod fake_namenode;
mod fs;
mod job;
mod lease_renewer;
mod metastore;
mod namenode_rpc;
mod pool;
mod reader;
pub mod sqljob;
mod writer;

pub use config::ClientConfig;
pub use error::{ClientError, Result};
pub use fs::{
    AdminState, BlockLocation, BlockProblem, Client, ContentSummary, CreateOptions, DatanodeInfo, FileStatus, FsckBlock, FsckFile,
    FsckOptions, FsckReplica, FsckReplicaState, FsckReport, FsckSummary, SafeModeAction, SafeModeStatus, ServerDefaults,
};
pub use job::{
    AttemptReport, AttemptState, ClusterStatus, Counter, ENV_JOBTRACKER, JobClient, JobReport, JobState, KillOutcome,
    Locality, StageSummary, TaskLog, TaskReport, TaskState, WorkerInfo,
};
pub use metastore::MetastoreClient;
pub use pool::ClientPool;
pub use reader::FileReader;
pub use tusk_proto::error::ErrorKind;
pub use writer::FileWriter;

/// Compile-time check: the handles and their futures can move between
/// threads (user programs spawn them on multi-threaded runtimes).
#[cfg(test)]
#[allow(dead_code)]
mod send_checks {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    async fn futures_are_send(c: Client, mut w: FileWriter, mut r: FileReader) {
        is_send(&c);
        is_send(&Client::connect(ClientConfig::new("h:1")));
        is_send(&c.create("/a", CreateOptions::default()));
        is_send(&c.open("/a"));
        is_send(&c.list("/"));
        is_send(&c.write_all("/a", b"x", true));
        is_send(&c.read_all("/a"));
        is_send(&w.write(b"x"));
        is_send(&r.read(&mut [0u8; 4]));
        is_send(&r.read_range(0, 1));
        is_send(&r.next_chunk());
        is_send(&c.fsck("/", FsckOptions::default()));
        is_send(&c.recover_lease("/a"));
        is_send(&c.safe_mode(SafeModeAction::Get));
        is_send(&c.datanode_admin("h:1", true));
        is_send(&w.close());
        is_send(&r);
    }

    async fn job_futures_are_send(j: JobClient) {
        is_send(&j);
        is_send(&JobClient::connect("h:1"));
        is_send(&j.submit("mapreduce", "{}"));
        is_send(&j.job("job_1_0001", true));
        is_send(&j.list());
        is_send(&j.kill("job_1_0001"));
        is_send(&j.cluster_status());
        is_send(&j.task_log("h:1", "attempt_1", 0, 1));
    }
}
