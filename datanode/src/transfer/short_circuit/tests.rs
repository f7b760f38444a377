//! A real domain socket and a real replica: the descriptors handed out read
//! the bytes that were written; unknown blocks are refused without any.

use super::*;
use crate::storage::Storage;
use crate::test_client::{payload, write_block};
use crate::transfer::{BlockReceivedSink, TransferServer, Xceivers};
use nix::sys::socket::{ControlMessageOwned, recvmsg};
use std::io::{IoSliceMut, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;
use tusk_proto::dfs::{ExtendedBlock, ReplicaReport};
use tusk_proto::transfer::{compute_checksums, read_message};

struct NoNamenode;

impl BlockReceivedSink for NoNamenode {
    fn block_received(&self, _: ReplicaReport) -> Result<(), DatanodeError> {
        Ok(())
    }
}

/// Sends a short-circuit request for `block` and returns the response and
/// the descriptors that came with it.
fn request(path: &Path, block: ExtendedBlock) -> (OpResponse, Vec<File>) {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let op = OpRequestShortCircuitFds { block: Some(block), client_name: "DFSClient_test".into() };
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::RequestShortCircuitFds(op)) };
    write_message(&mut stream, &req).unwrap();
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(got) = c {
                // SAFETY: the kernel just installed these descriptors for us.
                fds.extend(got.into_iter().map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) })));
            }
        }
        (msg.bytes, fds)
    };
    let mut rest = (&buf[..n]).chain(&mut stream);
    let resp: OpResponse = read_message(&mut rest).unwrap();
    (resp, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalized_replica_fds_read_the_written_bytes_and_unknown_blocks_get_none() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(&[dir.path().join("d")], 0, false).unwrap());
    let listener = TransferServer::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ctx = Arc::new(TransferContext {
        storage,
        sink: Arc::new(NoNamenode),
        self_addr: addr.clone(),
        socket_timeout: Duration::from_secs(20),
        max_xceivers: 16,
        xceivers: Arc::new(Xceivers::default()),
    });
    let tcp = TransferServer::spawn(listener, Arc::clone(&ctx));
    let sock = dir.path().join("run/dn.sock");
    // A stale socket from an earlier run is replaced.
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let uds = DomainSocketServer::spawn(DomainSocketServer::bind(&sock).unwrap(), sock.clone(), Arc::clone(&ctx));
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o666);

    let data = payload(150 * 1024 + 33);
    let id = 0x4242;
    let (resp, _) = write_block(std::slice::from_ref(&addr), id, &data, None).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");

    let (sock2, want) = (sock.clone(), data.clone());
    tokio::task::spawn_blocking(move || {
        let block = ExtendedBlock { block_id: id, generation_stamp: 1000, num_bytes: 0 };
        let (resp, fds) = request(&sock2, block);
        assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
        assert_eq!(resp.replica_length, want.len() as u64);
        assert_eq!(resp.bytes_per_checksum, 512);
        assert_eq!(fds.len(), 2);
        let mut got = vec![0u8; want.len()];
        fds[0].read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "data read through the descriptor differs");
        let mut sums = Vec::new();
        compute_checksums(&want, 512, &mut sums);
        let mut meta = vec![0u8; 7 + sums.len()];
        fds[1].read_exact_at(&mut meta, 0).unwrap();
        assert_eq!(&meta[..7], &[0, 1, 1, 0, 0, 2, 0]);
        assert_eq!(&meta[7..], &sums[..]);
        // The descriptors are read-only.
        assert!(fds[0].write_at(b"x", 0).is_err());

        for (bad, why) in [(id + 1, "no finalized replica"), (id, "older than the requested")] {
            let gs = if bad == id { 2000 } else { 1000 };
            let (resp, fds) = request(&sock2, ExtendedBlock { block_id: bad, generation_stamp: gs, num_bytes: 0 });
            assert_eq!(resp.status, TransferStatus::ErrorInvalid as i32, "{resp:?}");
            assert!(resp.message.contains(why), "{}", resp.message);
            assert!(fds.is_empty());
        }
    })
    .await
    .unwrap();

    // TCP reads of the same replica keep working alongside.
    let head = crate::test_client::read_block(&addr, id, 0, 10).await.unwrap();
    assert_eq!(head, &data[..10]);
    uds.stop().await;
    assert!(!sock.exists(), "socket file removed on stop");
    tcp.stop().await;
}
