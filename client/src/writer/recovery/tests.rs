//! Recovery policy, and whole recoveries against a fake namenode and fake
//! datanodes: the head datanode of a pipeline plays the whole pipeline (it
//! writes every packet into each member's replica and acks for all of them),
//! so a test can make any member fail.

use super::*;
use crate::CreateOptions;
use crate::fake_namenode::FakeNamenode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tusk_proto::dfs::{OpRequest, OpResponse, OpWriteBlock, PipelineAck, op_write_block};
use tusk_proto::transfer::{
    HEARTBEAT_SEQNO, read_message_async, read_packet_async, verify_checksums, write_message_async,
};

fn dn(n: u32) -> DatanodeId {
    DatanodeId { datanode_uuid: format!("u{n}"), transfer_addr: format!("10.0.0.{n}:1"), ..Default::default() }
}

#[test]
fn the_node_to_blame_is_the_named_one_else_the_first() {
    let mut st = RecoveryState::new(3);
    let mut nodes = vec![dn(1), dn(2), dn(3)];
    assert_eq!(st.drop_node(&mut nodes, Some("10.0.0.2:1")).map(|d| d.datanode_uuid), Some("u2".into()));
    assert_eq!(nodes, vec![dn(1), dn(3)]);
    // An address that is not in the pipeline: nothing better is known.
    assert_eq!(st.drop_node(&mut nodes, Some("10.9.9.9:1")).map(|d| d.datanode_uuid), Some("u1".into()));
    assert_eq!(st.drop_node(&mut nodes, None).map(|d| d.datanode_uuid), Some("u3".into()));
    assert!(nodes.is_empty());
    assert_eq!(st.drop_node(&mut nodes, None), None);
    assert_eq!(st.excluded_uuids(), vec!["u2", "u1", "u3"]);
    assert_eq!(st.failed_addrs(), "10.0.0.2:1, 10.0.0.1:1, 10.0.0.3:1");
    assert!(st.is_excluded(&dn(1)) && !st.is_excluded(&dn(4)));
}

#[test]
fn attempts_are_limited_per_block_and_need_a_node() {
    let mut st = RecoveryState::new(3);
    assert_eq!(st.max_attempts(), 5);
    let nodes = vec![dn(1)];
    for n in 1..=5 {
        assert_eq!(st.next_attempt(&nodes), Ok(n));
    }
    let e = st.next_attempt(&nodes).unwrap_err();
    assert!(e.contains("gave up after 5 attempts"), "{e}");
    let e = RecoveryState::new(3).next_attempt(&[]).unwrap_err();
    assert!(e.contains("no datanode is left"), "{e}");
    assert_eq!(RecoveryState::new(0).max_attempts(), 3, "replication is at least 1");
}

#[test]
fn a_replacement_is_wanted_below_the_replication() {
    let st = RecoveryState::new(3);
    assert!(st.wants_replacement(&[dn(1), dn(2)]));
    assert!(!st.wants_replacement(&[dn(1), dn(2), dn(3)]));
    assert!(!RecoveryState::new(1).wants_replacement(&[dn(1)]));
}

// ---------------------------------------------------------------------------
// Fake datanodes
// ---------------------------------------------------------------------------

/// How a fake datanode misbehaves.
#[derive(Debug, Clone, Copy, Default)]
struct Script {
    /// While heading a CREATE pipeline, at this seqno: ack ERROR in this
    /// member's slot (`Some`), or hang up (`None`).
    fail_at: Option<(u64, Option<usize>)>,
    refuse_create: bool,
    /// Refuses PIPELINE_RECOVERY as a member.
    refuse_recovery: bool,
    /// While heading a CREATE pipeline: from this data seqno on, stores
    /// packets but acks nothing, and hangs up at the next heartbeat.
    silent_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Cluster {
    scripts: HashMap<String, Script>,
    /// Replica bytes per datanode address.
    replicas: HashMap<String, Vec<u8>>,
    /// (head, stage, generation stamp, recovery length, members).
    setups: Vec<(String, i32, u64, u64, Vec<String>)>,
    transfers: Vec<(String, OpTransferRbw)>,
    finalized: Vec<(String, u64)>,
    /// Seqnos each setup's head received, in order (index of `setups`).
    received: Vec<Vec<u64>>,
    /// Heartbeats received: (head, stage, offset_in_block).
    heartbeats: Vec<(String, i32, u64)>,
    /// Like a real datanode, a head hangs up on a writer that sends nothing
    /// (no packet, no heartbeat) for this long.
    read_timeout: Option<Duration>,
    /// Protocol violations seen by the fakes.
    errors: Vec<String>,
}

#[derive(Clone, Default)]
struct Fakes(Arc<Mutex<Cluster>>);

impl Fakes {
    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `n` fake datanodes named u1..un.
    async fn start(&self, n: u32) -> Vec<DatanodeId> {
        let mut out = Vec::new();
        for i in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let me = DatanodeId { datanode_uuid: format!("u{i}"), transfer_addr: addr.clone(), ..Default::default() };
            out.push(me);
            let fakes = self.clone();
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    tokio::spawn(fakes.clone().serve(addr.clone(), s));
                }
            });
        }
        out
    }

    fn script(&self, addr: &str, s: Script) {
        self.lock().scripts.insert(addr.to_string(), s);
    }

    fn replica(&self, addr: &str) -> Vec<u8> {
        self.lock().replicas.get(addr).cloned().unwrap_or_default()
    }

    async fn serve(self, me: String, mut s: tokio::net::TcpStream) {
        let Ok(req) = read_message_async::<_, OpRequest>(&mut s).await else { return };
        match req.op {
            Some(op_request::Op::WriteBlock(op)) => self.write(me, s, op).await,
            Some(op_request::Op::TransferRbw(op)) => {
                {
                    let mut c = self.lock();
                    let data = c.replicas.get(&me).map(|r| r[..op.length as usize].to_vec()).unwrap_or_default();
                    for t in &op.targets {
                        c.replicas.insert(t.transfer_addr.clone(), data.clone());
                    }
                    c.transfers.push((me, op));
                }
                let _ = write_message_async(&mut s, &OpResponse::default()).await;
            }
            other => self.lock().errors.push(format!("{me}: unexpected op {other:?}")),
        }
    }

    async fn write(self, me: String, mut s: tokio::net::TcpStream, op: OpWriteBlock) {
        let members: Vec<String> =
            std::iter::once(me.clone()).chain(op.downstream.iter().map(|d| d.transfer_addr.clone())).collect();
        let gs = op.block.map(|b| b.generation_stamp).unwrap_or(0);
        let create = op.stage == op_write_block::Stage::Create as i32;
        let (refused, fail, silent_after, read_timeout, setup) = {
            let mut c = self.lock();
            let setup = c.setups.len();
            c.setups.push((me.clone(), op.stage, gs, op.recovery_length, members.clone()));
            c.received.push(Vec::new());
            let script = |c: &Cluster, m: &str| c.scripts.get(m).copied().unwrap_or_default();
            let refused = if create {
                let r = script(&c, &me).refuse_create.then(|| me.clone());
                if r.is_none() {
                    for m in &members {
                        c.replicas.insert(m.clone(), Vec::new());
                    }
                }
                r
            } else {
                let len = op.recovery_length as usize;
                // No replica at all is fine when nothing is to be kept.
                let bad = members.iter().find(|m| {
                    script(&c, m).refuse_recovery || c.replicas.get(*m).map_or(len > 0, |r| r.len() < len)
                });
                let r = bad.cloned();
                if r.is_none() {
                    for m in &members {
                        c.replicas.entry(m.clone()).or_default().truncate(len);
                    }
                }
                r
            };
            let (fail, silent) = if create { (script(&c, &me).fail_at, script(&c, &me).silent_after) } else { (None, None) };
            (refused, fail, silent, c.read_timeout, setup)
        };
        if let Some(bad) = refused {
            let resp = OpResponse {
                status: TransferStatus::Error as i32,
                first_bad_node: bad,
                message: "refused by the script".into(),
                ..Default::default()
            };
            let _ = write_message_async(&mut s, &resp).await;
            return;
        }
        if write_message_async(&mut s, &OpResponse::default()).await.is_err() {
            return;
        }
        let mut silent = false;
        loop {
            let read = read_packet_async(&mut s, 512);
            let p = match read_timeout {
                Some(t) => match tokio::time::timeout(t, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.lock().errors.push(format!("{me}: nothing from the writer for {t:?}: hung up"));
                        return;
                    }
                },
                None => read.await,
            };
            let Ok(p) = p else { return };
            let h = p.header;
            self.lock().received[setup].push(h.seqno);
            if h.seqno == HEARTBEAT_SEQNO {
                {
                    let mut c = self.lock();
                    let held = c.replicas.get(&me).map_or(0, |r| r.len() as u64);
                    if h.data_len != 0 || h.last_packet || !p.checksums.is_empty() || h.offset_in_block != held {
                        c.errors.push(format!("{me}: bad heartbeat {h:?} while holding {held} bytes"));
                    }
                    c.heartbeats.push((me.clone(), op.stage, h.offset_in_block));
                }
                if silent {
                    return;
                }
                let ack = PipelineAck { seqno: h.seqno, statuses: vec![TransferStatus::Success as i32; members.len()], message: String::new() };
                if write_message_async(&mut s, &ack).await.is_err() {
                    return;
                }
                continue;
            }
            silent |= silent_after.is_some_and(|n| h.seqno >= n);
            if verify_checksums(&p.data, &p.checksums, 512).is_err() {
                self.lock().errors.push(format!("{me}: bad checksums in packet {}", h.seqno));
            }
            let mut statuses = vec![TransferStatus::Success as i32; members.len()];
            let failing = fail.filter(|(at, _)| *at == h.seqno);
            {
                let mut guard = self.lock();
                let Cluster { replicas, errors, .. } = &mut *guard;
                for (i, m) in members.iter().enumerate() {
                    // Members before a failing one got the packet (more
                    // bytes than acknowledged: recovery truncates them);
                    // the failing one and those after it did not. Nobody
                    // stores it when the head hangs up.
                    if let Some((_, slot)) = failing
                        && !matches!(slot, Some(b) if i < b)
                    {
                        continue;
                    }
                    let r = replicas.entry(m.clone()).or_default();
                    if h.offset_in_block != r.len() as u64 {
                        let e = format!("{m}: packet {} at offset {} while holding {}", h.seqno, h.offset_in_block, r.len());
                        errors.push(e);
                    }
                    r.extend_from_slice(&p.data);
                }
            }
            match failing {
                Some((_, None)) => return,
                Some((_, Some(slot))) => statuses[slot] = TransferStatus::Error as i32,
                None => {}
            }
            if silent {
                continue;
            }
            let ack = PipelineAck { seqno: h.seqno, statuses, message: String::new() };
            if write_message_async(&mut s, &ack).await.is_err() {
                return;
            }
            if failing.is_some() {
                // Gave up: read on, ack nothing more.
                while read_packet_async(&mut s, 512).await.is_ok() {}
                return;
            }
            if h.last_packet {
                self.lock().finalized.push((me.clone(), gs));
                return;
            }
        }
    }
}

/// A fake namenode with `datanodes`, replication 3, 512-byte packets.
async fn namenode(datanodes: &[DatanodeId], spares: &[DatanodeId]) -> (FakeNamenode, crate::Client) {
    namenode_with(datanodes, spares, |_| {}).await
}

/// [`namenode`] with the client's configuration adjusted by `tweak`.
async fn namenode_with(
    datanodes: &[DatanodeId],
    spares: &[DatanodeId],
    tweak: impl FnOnce(&mut crate::ClientConfig),
) -> (FakeNamenode, crate::Client) {
    let nn = FakeNamenode::default();
    {
        let mut st = nn.state();
        st.datanodes = datanodes.to_vec();
        st.spares = spares.iter().cloned().collect();
        st.replication = 3;
        st.block_size = 1 << 20;
        st.packet_size = 512;
    }
    let client = nn.start_with(tweak).await;
    (nn, client)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn write_file(client: &crate::Client, bytes: &[u8]) -> Result<u64> {
    let mut w = client.create("/f", CreateOptions::default()).await?;
    for piece in bytes.chunks(700) {
        w.write(piece).await?;
    }
    w.close().await
}

fn uuids(ids: &[&DatanodeId]) -> Vec<String> {
    ids.iter().map(|d| d.datanode_uuid.clone()).collect()
}

#[tokio::test]
async fn a_bad_middle_node_is_replaced_and_the_rest_resent() {
    let fakes = Fakes::default();
    let dns = fakes.start(4).await;
    let (nn, client) = namenode(&dns[..3], &dns[3..]).await;
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((3, Some(1))), ..Default::default() });
    let bytes = data(10 * 512 + 100);
    assert_eq!(write_file(&client, &bytes).await.unwrap(), bytes.len() as u64);

    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    drop(c);
    for d in [&dns[0], &dns[2], &dns[3]] {
        assert_eq!(fakes.replica(&d.transfer_addr), bytes, "replica on {}", d.datanode_uuid);
    }
    assert!(fakes.replica(&dns[1].transfer_addr).len() <= 3 * 512, "the failed node got nothing more");
    let st = nn.state();
    assert_eq!(st.update_block.len(), 1);
    assert_eq!((st.update_block[0].generation_stamp, st.update_block[0].num_bytes), (1, 3 * 512));
    // The replacement was asked for with the new stamp, the survivors and the failed node.
    assert_eq!(st.additional.len(), 1);
    let add = &st.additional[0];
    assert_eq!(add.block.map(|b| b.generation_stamp), Some(2));
    assert_eq!(add.existing_uuids, uuids(&[&dns[0], &dns[2]]));
    assert_eq!(add.excluded_uuids, uuids(&[&dns[1]]));
    let up = &st.update_pipeline[..];
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].block.map(|b| (b.generation_stamp, b.num_bytes)), Some((2, 3 * 512)));
    assert_eq!(up[0].datanode_uuids, uuids(&[&dns[0], &dns[2], &dns[3]]));
    assert_eq!(st.completed, vec![Some(ExtendedBlock { block_id: 1000, generation_stamp: 2, num_bytes: bytes.len() as u64 })]);
    drop(st);
    let c = fakes.lock();
    // The survivor copied the acked bytes to the replacement with the new stamp.
    assert_eq!(c.transfers.len(), 1);
    let (src, t) = &c.transfers[0];
    assert_eq!(src, &dns[0].transfer_addr);
    assert_eq!((t.length, t.new_generation_stamp, t.block.map(|b| b.generation_stamp)), (3 * 512, 2, Some(1)));
    let recovery = op_write_block::Stage::PipelineRecovery as i32;
    let rec: Vec<_> = c.setups.iter().filter(|s| s.1 == recovery).collect();
    assert_eq!(rec.len(), 1);
    assert_eq!((rec[0].2, rec[0].3), (2, 3 * 512), "new stamp, recovery length = acked bytes");
    assert_eq!(c.finalized, vec![(dns[0].transfer_addr.clone(), 2)]);
}

#[tokio::test]
async fn a_failure_before_the_first_ack_adds_a_replacement_without_a_copy() {
    let fakes = Fakes::default();
    let dns = fakes.start(4).await;
    let (nn, client) = namenode(&dns[..3], &dns[3..]).await;
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((0, Some(1))), ..Default::default() });
    let bytes = data(3 * 512 + 5);
    assert_eq!(write_file(&client, &bytes).await.unwrap(), bytes.len() as u64);
    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(c.transfers.is_empty(), "nothing acknowledged, nothing to copy: {:?}", c.transfers);
    let recovery = op_write_block::Stage::PipelineRecovery as i32;
    let rec: Vec<_> = c.setups.iter().filter(|s| s.1 == recovery).collect();
    assert_eq!(rec.len(), 1, "the replacement joined the first recovery: {rec:?}");
    assert_eq!(rec[0].3, 0);
    drop(c);
    for d in [&dns[0], &dns[2], &dns[3]] {
        assert_eq!(fakes.replica(&d.transfer_addr), bytes, "replica on {}", d.datanode_uuid);
    }
    let st = nn.state();
    assert_eq!(st.update_pipeline[0].datanode_uuids, uuids(&[&dns[0], &dns[2], &dns[3]]));
}

#[tokio::test]
async fn a_dead_head_is_dropped_and_the_write_goes_on_without_a_replacement() {
    let fakes = Fakes::default();
    let dns = fakes.start(3).await;
    let (nn, client) = namenode(&dns, &[]).await;
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((2, None)), ..Default::default() });
    let bytes = data(6 * 512);
    assert_eq!(write_file(&client, &bytes).await.unwrap(), bytes.len() as u64);
    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    drop(c);
    for d in &dns[1..] {
        assert_eq!(fakes.replica(&d.transfer_addr), bytes);
    }
    let st = nn.state();
    assert_eq!(st.additional.len(), 1, "a replacement was asked for");
    assert_eq!(st.update_pipeline[0].datanode_uuids, uuids(&[&dns[1], &dns[2]]));
    // Acks sent just before the hang-up may be lost with the connection.
    let acked = st.update_pipeline[0].block.map(|b| b.num_bytes).unwrap_or(u64::MAX);
    assert!(acked <= 2 * 512 && acked % 512 == 0, "{acked}");
    assert_eq!(st.completed[0].map(|b| (b.generation_stamp, b.num_bytes)), Some((2, 6 * 512)));
}

#[tokio::test]
async fn a_node_refusing_recovery_is_dropped_and_recovery_retried_with_a_new_stamp() {
    let fakes = Fakes::default();
    let dns = fakes.start(3).await;
    let (nn, client) = namenode(&dns, &[]).await;
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((1, Some(1))), ..Default::default() });
    fakes.script(&dns[2].transfer_addr, Script { refuse_recovery: true, ..Default::default() });
    let bytes = data(4 * 512 + 7);
    write_file(&client, &bytes).await.unwrap();
    assert_eq!(fakes.replica(&dns[0].transfer_addr), bytes);
    let st = nn.state();
    let stamps: Vec<u64> = st.update_block.iter().map(|b| b.generation_stamp).collect();
    assert_eq!(stamps, vec![1, 2], "each attempt asks for a new stamp from the current one");
    assert_eq!(st.update_pipeline.len(), 1);
    assert_eq!(st.update_pipeline[0].datanode_uuids, uuids(&[&dns[0]]));
    assert_eq!(st.completed[0].map(|b| b.generation_stamp), Some(3));
}

#[tokio::test]
async fn a_failure_on_the_last_packet_resends_it_and_completes_with_the_new_stamp() {
    let fakes = Fakes::default();
    let dns = fakes.start(3).await;
    let (nn, client) = namenode(&dns, &[]).await;
    // 3 data packets (seqnos 0-2), the last packet is seqno 3.
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((3, Some(2))), ..Default::default() });
    let bytes = data(3 * 512);
    write_file(&client, &bytes).await.unwrap();
    let st = nn.state();
    assert_eq!(st.update_block[0].num_bytes, 3 * 512, "every data packet was acked");
    assert_eq!(st.completed[0].map(|b| (b.generation_stamp, b.num_bytes)), Some((2, 3 * 512)));
    drop(st);
    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.finalized, vec![(dns[0].transfer_addr.clone(), 2)]);
}

#[tokio::test]
async fn with_no_node_left_the_write_fails_naming_the_block_and_the_nodes() {
    let fakes = Fakes::default();
    let dns = fakes.start(3).await;
    let (_nn, client) = namenode(&dns, &[]).await;
    fakes.script(&dns[0].transfer_addr, Script { fail_at: Some((1, Some(0))), ..Default::default() });
    for d in &dns[1..] {
        fakes.script(&d.transfer_addr, Script { refuse_recovery: true, ..Default::default() });
    }
    let e = write_file(&client, &data(3 * 512)).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::Block { .. }), "{e:?}");
    assert!(text.contains("blk_1000_") && text.contains("no datanode is left"), "{text}");
    for d in &dns {
        assert!(text.contains(&d.transfer_addr), "{text}");
    }
}

#[tokio::test]
async fn a_refused_setup_of_a_new_block_excludes_the_node_and_allocates_again() {
    let fakes = Fakes::default();
    let dns = fakes.start(4).await;
    let (nn, client) = namenode(&dns, &[]).await;
    fakes.script(&dns[0].transfer_addr, Script { refuse_create: true, ..Default::default() });
    fakes.script(&dns[1].transfer_addr, Script { refuse_create: true, ..Default::default() });
    write_file(&client, &data(1000)).await.unwrap();
    {
        let st = nn.state();
        assert_eq!(st.add_block_excluded, vec![vec![], vec!["u1".to_string()], vec!["u1".to_string(), "u2".to_string()]]);
        assert_eq!(st.abandoned.len(), 2);
    }

    // A third refusal in a row gives up.
    let fakes = Fakes::default();
    let dns = fakes.start(4).await;
    let (nn, client) = namenode(&dns, &[]).await;
    for d in &dns {
        fakes.script(&d.transfer_addr, Script { refuse_create: true, ..Default::default() });
    }
    let e = write_file(&client, &data(1000)).await.unwrap_err();
    assert!(e.to_string().contains("pipeline setup failed 3 times"), "{e}");
    assert_eq!(nn.state().add_block_excluded.len(), 3);
}

#[tokio::test]
async fn a_node_that_failed_a_setup_is_kept_out_of_the_next_blocks() {
    let fakes = Fakes::default();
    let dns = fakes.start(4).await;
    let (nn, client) = namenode(&dns, &[]).await;
    nn.state().block_size = 1024;
    fakes.script(&dns[0].transfer_addr, Script { refuse_create: true, ..Default::default() });
    let bytes = data(2500);
    assert_eq!(write_file(&client, &bytes).await.unwrap(), 2500);
    let st = nn.state();
    let u1 = vec!["u1".to_string()];
    assert_eq!(st.add_block_excluded, vec![vec![], u1.clone(), u1.clone(), u1]);
    assert_eq!(st.abandoned.len(), 1, "only the first block was refused");
    assert_eq!(st.completed[0].map(|b| (b.block_id, b.num_bytes)), Some((1003, 2500 - 2048)));
}

// ---------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------

/// The socket timeout of the heartbeat tests (heartbeats every 250 ms).
const SOCKET_TIMEOUT: Duration = Duration::from_millis(500);

/// Fake datanodes that hang up on a silent writer after [`SOCKET_TIMEOUT`],
/// and a client with that socket timeout.
async fn timing_out_cluster(n: u32) -> (Fakes, Vec<DatanodeId>, FakeNamenode, crate::Client) {
    let fakes = Fakes::default();
    fakes.lock().read_timeout = Some(SOCKET_TIMEOUT);
    let dns = fakes.start(n).await;
    let (nn, client) = namenode_with(&dns, &[], |c| c.socket_timeout_ms = SOCKET_TIMEOUT.as_millis() as u64).await;
    (fakes, dns, nn, client)
}

#[tokio::test]
async fn an_idle_writer_keeps_its_pipeline_with_heartbeats() {
    let (fakes, dns, nn, client) = timing_out_cluster(3).await;
    let bytes = data(5 * 512 + 100);
    let mut w = client.create("/f", CreateOptions::default()).await.unwrap();
    w.write(&bytes[..3 * 512]).await.unwrap();
    // The application pauses for several socket timeouts, twice.
    tokio::time::sleep(SOCKET_TIMEOUT * 4).await;
    w.write(&bytes[3 * 512..5 * 512]).await.unwrap();
    tokio::time::sleep(SOCKET_TIMEOUT * 4).await;
    w.write(&bytes[5 * 512..]).await.unwrap();
    assert_eq!(w.close().await.unwrap(), bytes.len() as u64);

    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    // Heartbeats were sent in both pauses, each at the bytes sent so far.
    let offsets: Vec<u64> = c.heartbeats.iter().map(|h| h.2).collect();
    assert!(offsets.iter().filter(|o| **o == 3 * 512).count() >= 3, "{offsets:?}");
    assert!(offsets.iter().filter(|o| **o == 5 * 512).count() >= 3, "{offsets:?}");
    assert!(c.heartbeats.iter().all(|h| h.0 == dns[0].transfer_addr), "{:?}", c.heartbeats);
    assert_eq!(c.setups.len(), 1, "one pipeline, never recovered: {:?}", c.setups);
    assert_eq!(c.finalized, vec![(dns[0].transfer_addr.clone(), 1)]);
    drop(c);
    for d in &dns {
        assert_eq!(fakes.replica(&d.transfer_addr), bytes, "heartbeats wrote nothing on {}", d.datanode_uuid);
    }
    let st = nn.state();
    assert!(st.update_block.is_empty() && st.update_pipeline.is_empty(), "no pipeline recovery");
    assert_eq!(st.completed, vec![Some(ExtendedBlock { block_id: 1000, generation_stamp: 1, num_bytes: bytes.len() as u64 })]);
}

#[tokio::test]
async fn heartbeats_in_flight_are_never_resent_by_a_recovery() {
    let (fakes, dns, nn, client) = timing_out_cluster(3).await;
    // The head acks packets 0 and 1, swallows 2 and 3, and hangs up at the
    // heartbeat that follows them while the writer is idle.
    fakes.script(&dns[0].transfer_addr, Script { silent_after: Some(2), ..Default::default() });
    let bytes = data(6 * 512);
    let mut w = client.create("/f", CreateOptions::default()).await.unwrap();
    w.write(&bytes[..4 * 512]).await.unwrap();
    tokio::time::sleep(SOCKET_TIMEOUT * 2).await;
    w.write(&bytes[4 * 512..]).await.unwrap();
    assert_eq!(w.close().await.unwrap(), bytes.len() as u64);

    let c = fakes.lock();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let create = op_write_block::Stage::Create as i32;
    assert!(c.heartbeats.contains(&(dns[0].transfer_addr.clone(), create, 4 * 512)), "{:?}", c.heartbeats);
    assert_eq!(c.received[0], vec![0, 1, 2, 3, HEARTBEAT_SEQNO], "the CREATE pipeline");
    // The recovery pipeline got the unacknowledged data packets, then the
    // rest: no heartbeat was resent.
    let recovery = op_write_block::Stage::PipelineRecovery as i32;
    let rec: Vec<usize> = (0..c.setups.len()).filter(|i| c.setups[*i].1 == recovery).collect();
    assert_eq!(rec.len(), 1, "{:?}", c.setups);
    assert_eq!(c.setups[rec[0]].3, 2 * 512, "recovery length = the acknowledged bytes");
    assert_eq!(c.received[rec[0]], vec![2, 3, 4, 5, 6]);
    drop(c);
    for d in &dns[1..] {
        assert_eq!(fakes.replica(&d.transfer_addr), bytes, "replica on {}", d.datanode_uuid);
    }
    let st = nn.state();
    assert_eq!(st.update_block.len(), 1);
    assert_eq!(st.update_block[0].num_bytes, 2 * 512, "heartbeats count no acknowledged bytes");
    assert_eq!(st.update_pipeline[0].datanode_uuids, uuids(&[&dns[1], &dns[2]]), "the silent head was blamed");
    assert_eq!(st.completed[0].map(|b| (b.generation_stamp, b.num_bytes)), Some((2, 6 * 512)));
}
