//! `tusk dfs ...`: HDFS-style filesystem commands.
//!
//! Relative paths are resolved against the user's home directory
//! `/user/<name>`, as `hdfs dfs` does. Every failure prints one line
//! (`tusk: /data/x: no such file or directory`) and exits non-zero.

pub(crate) mod format;
mod fsck;
mod lease;
mod namespace;
mod transfer;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tusk_client::{Client, ClientConfig};

/// Flags shared by every `tusk dfs` command.
#[derive(Debug, Args)]
pub struct DfsArgs {
    /// Namenode address (host:port); else TUSK_NAMENODE, else the file named by TUSK_CONF.
    #[arg(long, global = true)]
    namenode: Option<String>,
    #[command(subcommand)]
    command: DfsCommand,
}

#[derive(Debug, Subcommand)]
enum DfsCommand {
    /// Upload local files or directories (`-` reads stdin).
    Put {
        /// Overwrite existing files.
        #[arg(short = 'f', long)]
        force: bool,
        /// Replication factor of the new files.
        #[arg(long)]
        replication: Option<u32>,
        /// Block size of the new files (e.g. 64MiB).
        #[arg(long, value_parser = parse_size)]
        block_size: Option<u64>,
        /// Local sources, then the DFS destination.
        #[arg(required = true, num_args = 2.., allow_hyphen_values = true)]
        paths: Vec<String>,
    },
    /// Download files or directories.
    Get {
        /// Overwrite existing local files.
        #[arg(short = 'f', long)]
        force: bool,
        /// DFS sources, then the local destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Print files to stdout.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// List directories (or show files).
    Ls {
        /// Recurse into subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// WebHDFS-shaped JSON output.
        #[arg(long)]
        json: bool,
        paths: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create parents as needed; no error if the directory exists.
        #[arg(short = 'p', long)]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Delete files or directories.
    Rm {
        /// Delete directories and their contents.
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// No error for missing paths.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Move (rename) files or directories within the DFS.
    Mv {
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Copy files or directories within the DFS.
    Cp {
        /// Overwrite existing files.
        #[arg(short = 'f', long)]
        force: bool,
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Show a file's status; FORMAT as in `hdfs dfs -stat` (%b %F %g %n %o %r %u %y %Y %a %A).
    Stat {
        /// WebHDFS-shaped JSON output.
        #[arg(long)]
        json: bool,
        /// Optional format, then the path.
        #[arg(required = true, num_args = 1..=2)]
        args: Vec<String>,
    },
    /// Space used by files and directories.
    Du {
        /// One summary line per path.
        #[arg(short = 's', long)]
        summary: bool,
        paths: Vec<String>,
    },
    /// Change the replication factor (recursively for directories).
    Setrep {
        /// Wait until every block has exactly that many live replicas.
        #[arg(short = 'w', long)]
        wait: bool,
        replication: u32,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change permissions: octal (755) or symbolic (u+x,go-w).
    Chmod {
        #[arg(short = 'R', long)]
        recursive: bool,
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change owner and/or group: OWNER[:GROUP] or :GROUP.
    Chown {
        #[arg(short = 'R', long)]
        recursive: bool,
        owner: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create empty files.
    Touchz {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Test a path: exit 0 if true, 1 if false.
    Test {
        #[command(flatten)]
        what: TestFlags,
        path: String,
    },
    /// Check the health of a tree's blocks (as `hdfs fsck`): exit 0 if
    /// HEALTHY, 1 if a block is corrupt or missing.
    Fsck(fsck::FsckArgs),
    /// Recover the lease of a file left open by a writer (as `hdfs debug
    /// recoverLease`): exit 0 once the file is closed, 1 if it is not after
    /// the last try.
    RecoverLease {
        /// The file left open.
        path: String,
        /// How many times to ask, waiting longer after each refusal.
        #[arg(long, default_value_t = 1)]
        retries: u32,
    },
}

/// Exactly one of the tests of `tusk dfs test`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TestFlags {
    /// The path exists.
    #[arg(short = 'e')]
    exists: bool,
    /// The path is a directory.
    #[arg(short = 'd')]
    dir: bool,
    /// The path is a file.
    #[arg(short = 'f')]
    file: bool,
    /// The path is a non-empty file.
    #[arg(short = 's')]
    non_empty: bool,
    /// The path is a zero-length file.
    #[arg(short = 'z')]
    zero: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    tusk_common::size::parse_size(s)
}

/// A connected client plus the user's home directory for relative paths.
pub(crate) struct Dfs {
    pub client: Client,
    home: String,
}

impl Dfs {
    pub async fn connect(namenode: Option<&str>) -> anyhow::Result<Dfs> {
        let config = ClientConfig::resolve(namenode)?;
        let client = Client::connect(config).await?;
        let home = format!("/user/{}", client.user());
        Ok(Dfs { client, home })
    }

    /// Resolves a user-given path: absolute as is, relative under the home
    /// directory; `dfs://host:port/p` and `hdfs://…/p` URIs keep their path.
    pub fn resolve(&self, p: &str) -> String {
        let p = strip_scheme(p);
        if p.starts_with('/') {
            p.to_string()
        } else if p.is_empty() || p == "." {
            self.home.clone()
        } else {
            format!("{}/{}", self.home, p.trim_start_matches("./"))
        }
    }
}

fn strip_scheme(p: &str) -> &str {
    for scheme in ["dfs://", "hdfs://"] {
        if let Some(rest) = p.strip_prefix(scheme) {
            return rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        }
    }
    p
}

pub async fn run(args: DfsArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    let dfs = Dfs::connect(args.namenode.as_deref()).await?;
    use DfsCommand::*;
    match args.command {
        Put { force, replication, block_size, mut paths } => {
            let dst = paths.pop().context("missing destination")?;
            let opts = transfer::PutOptions { force, replication, block_size };
            transfer::put(&dfs, &paths, &dst, &opts).await?;
        }
        Get { force, mut paths } => {
            let dst = PathBuf::from(paths.pop().context("missing destination")?);
            transfer::get(&dfs, &paths, &dst, force).await?;
        }
        Cat { paths } => transfer::cat(&dfs, &paths).await?,
        Cp { force, mut paths } => {
            let dst = paths.pop().context("missing destination")?;
            transfer::cp(&dfs, &paths, &dst, force).await?;
        }
        Ls { recursive, json, paths } => namespace::ls(&dfs, &paths, recursive, json).await?,
        Mkdir { parents, paths } => namespace::mkdir(&dfs, &paths, parents).await?,
        Rm { recursive, force, paths } => namespace::rm(&dfs, &paths, recursive, force).await?,
        Mv { mut paths } => {
            let dst = paths.pop().context("missing destination")?;
            namespace::mv(&dfs, &paths, &dst).await?;
        }
        Stat { json, mut args } => {
            let path = args.pop().context("missing path")?;
            namespace::stat(&dfs, &path, args.pop().as_deref(), json).await?;
        }
        Du { summary, paths } => namespace::du(&dfs, &paths, summary).await?,
        Setrep { wait, replication, paths } => namespace::setrep(&dfs, &paths, replication, wait).await?,
        Chmod { recursive, mode, paths } => namespace::chmod(&dfs, &paths, &mode, recursive).await?,
        Chown { recursive, owner, paths } => namespace::chown(&dfs, &paths, &owner, recursive).await?,
        Touchz { paths } => namespace::touchz(&dfs, &paths).await?,
        Test { what, path } => {
            let ok = namespace::test(&dfs, &path, what.kind()).await?;
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        Fsck(a) => return fsck::run(&dfs, &a).await,
        RecoverLease { path, retries } => return lease::recover_lease(&dfs, &path, retries).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Which test `tusk dfs test` runs.
pub(crate) enum TestKind {
    Exists,
    Dir,
    File,
    NonEmpty,
    Zero,
}

impl TestFlags {
    fn kind(&self) -> TestKind {
        if self.dir {
            TestKind::Dir
        } else if self.file {
            TestKind::File
        } else if self.non_empty {
            TestKind::NonEmpty
        } else if self.zero {
            TestKind::Zero
        } else {
            TestKind::Exists
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_scheme;

    #[test]
    fn uri_schemes_are_stripped() {
        assert_eq!(strip_scheme("dfs://h:1/a/b"), "/a/b");
        assert_eq!(strip_scheme("hdfs://h:1"), "/");
        assert_eq!(strip_scheme("/x"), "/x");
    }
}
