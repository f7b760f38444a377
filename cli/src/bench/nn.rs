//! `tusk bench nn`: namenode throughput through the real RPC, C clients
//! (each with its own connection) issuing N operations in all. The baseline
//! is the same clients calling an RPC that does no namespace work
//! (`GetDatanodeReport` on a cluster without datanodes): the ceiling the
//! transport alone allows on this machine.
//!
//! `--op memory` instead builds a namespace of `--files` files with one
//! block each inside this process and reports bytes per file+block.

use anyhow::bail;
use clap::{Args, ValueEnum};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig, CreateOptions};

use super::Target;
use crate::cluster::ClusterOptions;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Op {
    /// create + complete of an empty file (durable).
    Create,
    /// mkdirs (durable).
    Mkdir,
    /// get file info.
    Stat,
    /// list a directory of 100 entries.
    List,
    /// namenode memory per file+block (in process, no RPC).
    Memory,
}

#[derive(Debug, Args)]
pub struct NnArgs {
    #[arg(long, value_enum)]
    op: Op,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Operations in all.
    #[arg(long, default_value_t = 100_000)]
    ops: usize,
    /// With --op memory: number of files (one block each).
    #[arg(long, default_value_t = 1_000_000)]
    files: u64,
}

/// Files per directory for create/mkdir/stat (spreads the namespace like
/// NNThroughputBenchmark does).
const FILES_PER_DIR: usize = 1000;
/// Files prepared for the stat benchmark.
const STAT_FILES: usize = 10_000;
/// Entries per listed directory.
const LIST_DIR_SIZE: usize = 100;

pub async fn run(namenode: Option<String>, args: NnArgs) -> anyhow::Result<()> {
    if let Op::Memory = args.op {
        // The measurement drives its own runtime: run it off this one.
        let files = args.files;
        let r = tokio::task::spawn_blocking(move || tusk_namenode::bench::memory_per_file(files)).await??;
        println!("{r:#?}");
        return Ok(());
    }
    if args.clients == 0 || args.ops == 0 {
        bail!("--clients and --ops must be positive");
    }
    let target = Target::get(namenode, 0, ClusterOptions::default()).await?;
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Client::connect(ClientConfig::new(target.namenode.clone())).await?);
    }
    let root = format!("/bench/nn-{}", std::process::id());
    clients[0].mkdirs(&root, None, true).await?;
    prepare(&clients[0], &root, args.op, args.ops).await?;

    let baseline = drive(&clients, args.ops, |c, _i| async move {
        c.datanode_report().await?;
        Ok(())
    })
    .await?;
    let root = Arc::new(root);
    let measured = {
        let root = root.clone();
        let op = args.op;
        drive(&clients, args.ops, move |c, i| {
            let root = root.clone();
            async move { one_op(&c, &root, op, i).await }
        })
        .await?
    };
    let _ = clients[0].delete(&root, true).await;
    let rate = |d: Duration| args.ops as f64 / d.as_secs_f64().max(1e-9);
    println!("nn bench: {:?}, {} clients, {} ops", args.op, args.clients, args.ops);
    println!("  {:<28} {:>12.0} ops/s ({:.2?})", format!("{:?}", args.op).to_lowercase(), rate(measured), measured);
    println!("  {:<28} {:>12.0} ops/s ({:.2?})", "baseline: no-op RPC", rate(baseline), baseline);
    let goal = match args.op {
        Op::Create => Some(("durable creates/s", 20_000.0)),
        Op::Stat => Some(("file-info lookups/s", 150_000.0)),
        _ => None,
    };
    if let Some((what, g)) = goal {
        let r = rate(measured);
        println!("  target >= {g:.0} {what}: {}", if r >= g { "met" } else { "missed" });
    }
    target.finish().await
}

async fn prepare(client: &Client, root: &str, op: Op, ops: usize) -> anyhow::Result<()> {
    match op {
        Op::Stat => {
            for i in 0..STAT_FILES {
                let dir = format!("{root}/d{}", i / FILES_PER_DIR);
                client.create(&format!("{dir}/f{i}"), CreateOptions { create_parent: true, ..Default::default() }).await?.close().await?;
            }
        }
        Op::List => {
            for i in 0..LIST_DIR_SIZE {
                client.create(&format!("{root}/list/f{i}"), CreateOptions { create_parent: true, ..Default::default() }).await?.close().await?;
            }
        }
        Op::Create | Op::Mkdir | Op::Memory => {
            for d in 0..ops.div_ceil(FILES_PER_DIR) {
                client.mkdirs(&format!("{root}/d{d}"), None, true).await?;
            }
        }
    }
    Ok(())
}

async fn one_op(c: &Client, root: &str, op: Op, i: usize) -> anyhow::Result<()> {
    match op {
        Op::Create => {
            let w = c.create(&format!("{root}/d{}/f{i}", i / FILES_PER_DIR), CreateOptions::default()).await?;
            w.close().await?;
        }
        Op::Mkdir => c.mkdirs(&format!("{root}/d{}/m{i}", i / FILES_PER_DIR), None, false).await?,
        Op::Stat => {
            let j = i % STAT_FILES;
            let _ = c.try_stat(&format!("{root}/d{}/f{j}", j / FILES_PER_DIR)).await?;
        }
        Op::List => {
            let n = c.list(&format!("{root}/list")).await?.len();
            if n != LIST_DIR_SIZE {
                bail!("listed {n} entries, expected {LIST_DIR_SIZE}");
            }
        }
        Op::Memory => {}
    }
    Ok(())
}

/// Runs `ops` operations spread over the clients (client k takes i ≡ k mod C).
async fn drive<F, Fut>(clients: &[Client], ops: usize, f: F) -> anyhow::Result<Duration>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let n = clients.len();
    for (k, c) in clients.iter().enumerate() {
        let (c, f) = (c.clone(), f.clone());
        tasks.spawn(async move {
            let mut i = k;
            while i < ops {
                f(c.clone(), i).await?;
                i += n;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}
