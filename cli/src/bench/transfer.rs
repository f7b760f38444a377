//! `tusk bench transfer`: the measurement behind the choice of the
//! data-transfer protocol. The same bytes, in 64 KiB packets with a CRC32C
//! per 512 bytes computed by the sender and verified by the receiver, go over
//! loopback once through a gRPC client stream (tonic) and once through the
//! plain framed TCP protocol that datanodes speak.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};
use tusk_proto::bench::transfer_bench_client::TransferBenchClient;
use tusk_proto::bench::transfer_bench_server::{TransferBench, TransferBenchServer};
use tusk_proto::bench::{TransferChunk, TransferSummary};
use tusk_proto::dfs::PacketHeader;
use tusk_proto::transfer::{
    DEFAULT_BYTES_PER_CHECKSUM as BPC, DEFAULT_PACKET_SIZE, compute_checksums, read_packet_async,
    verify_checksums, write_packet_async,
};

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Bytes to send through each protocol.
    #[arg(long, default_value = "2GiB", value_parser = tusk_common::size::parse_size)]
    size: u64,
}

pub async fn run(args: TransferArgs) -> anyhow::Result<()> {
    let packet: Bytes = (0..DEFAULT_PACKET_SIZE).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>().into();
    let packets = args.size.div_ceil(u64::from(DEFAULT_PACKET_SIZE));
    let total = packets * u64::from(DEFAULT_PACKET_SIZE);
    let tcp = tcp_run(&packet, packets).await?;
    let grpc = grpc_run(&packet, packets).await?;
    let mbps = |d: Duration| total as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    println!("transfer: {} MiB in 64 KiB packets over loopback, CRC32C verified", total >> 20);
    println!("  plain framed TCP   {:>8.0} MB/s", mbps(tcp));
    println!("  gRPC client stream {:>8.0} MB/s", mbps(grpc));
    println!("  TCP / gRPC         {:>8.2}x", grpc.as_secs_f64() / tcp.as_secs_f64().max(1e-9));
    Ok(())
}

async fn tcp_run(packet: &Bytes, packets: u64) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await?;
        sock.set_nodelay(true)?;
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let mut received = 0u64;
        loop {
            let p = read_packet_async(&mut r, BPC).await?;
            if p.header.last_packet {
                break;
            }
            if verify_checksums(&p.data, &p.checksums, BPC).is_err() {
                bail!("checksum mismatch");
            }
            received += p.data.len() as u64;
        }
        w.write_u64(received).await?;
        anyhow::Ok(received)
    });
    let start = Instant::now();
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let (mut r, w) = sock.into_split();
    let mut w = BufWriter::with_capacity(256 * 1024, w);
    let mut sums = Vec::with_capacity(packet.len() / 128);
    for seqno in 0..packets {
        sums.clear();
        compute_checksums(packet, BPC, &mut sums);
        let header = PacketHeader { seqno, offset_in_block: 0, last_packet: false, data_len: packet.len() as u32 };
        write_packet_async(&mut w, &header, &sums, packet).await?;
    }
    let last = PacketHeader { seqno: packets, offset_in_block: 0, last_packet: true, data_len: 0 };
    write_packet_async(&mut w, &last, &[], &[]).await?;
    w.flush().await?;
    use tokio::io::AsyncReadExt;
    let acked = r.read_u64().await?;
    let elapsed = start.elapsed();
    let received = server.await.context("tcp server")??;
    if acked != received || received != packets * packet.len() as u64 {
        bail!("tcp: received {received} bytes");
    }
    Ok(elapsed)
}

/// HTTP/2 flow-control window for the gRPC run: large enough that flow
/// control does not throttle it (tonic's default is 64 KiB).
const GRPC_WINDOW: u32 = 8 << 20;

struct Sink;

#[tonic::async_trait]
impl TransferBench for Sink {
    async fn push(&self, request: Request<Streaming<TransferChunk>>) -> Result<Response<TransferSummary>, Status> {
        let mut stream = request.into_inner();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.message().await? {
            if verify_checksums(&chunk.data, &chunk.checksums, BPC).is_err() {
                return Err(Status::data_loss("checksum mismatch"));
            }
            bytes += chunk.data.len() as u64;
        }
        Ok(Response::new(TransferSummary { bytes }))
    }
}

async fn grpc_run(packet: &Bytes, packets: u64) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(GRPC_WINDOW))
            .initial_connection_window_size(Some(GRPC_WINDOW * 2))
            .add_service(TransferBenchServer::new(Sink).max_decoding_message_size(1 << 20))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    let start = Instant::now();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(GRPC_WINDOW))
        .initial_connection_window_size(Some(GRPC_WINDOW * 2))
        .connect()
        .await?;
    let mut client = TransferBenchClient::new(channel);
    let packet = packet.clone();
    let stream = async_stream_of(packet, packets);
    let summary = client.push(stream).await?.into_inner();
    let elapsed = start.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;
    if summary.bytes != packets * u64::from(DEFAULT_PACKET_SIZE) {
        bail!("grpc: received {} bytes", summary.bytes);
    }
    Ok(elapsed)
}

fn async_stream_of(packet: Bytes, packets: u64) -> impl tokio_stream::Stream<Item = TransferChunk> {
    tokio_stream::iter(0..packets).map(move |_| {
        let mut sums = Vec::with_capacity(packet.len() / 128);
        compute_checksums(&packet, BPC, &mut sums);
        TransferChunk { data: packet.clone(), checksums: sums.into() }
    })
}

