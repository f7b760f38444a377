//! `tusk dfs` commands behave like `hdfs dfs`: recursive put/get, listings
//! and WebHDFS-shaped JSON, stat, du, setrep, chmod, chown, touchz, test,
//! mv, cp, stdin uploads.

use std::io::Write;
use std::process::Stdio;
use tusk_tests::{TestCluster, test_bytes};

#[test]
fn namespace_commands_work_end_to_end() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(128 * 1024).start()?;
    let local = tempfile::tempdir()?;
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub"))?;
    std::fs::write(tree.join("a.txt"), b"hello\n")?;
    std::fs::write(tree.join("sub").join("b.bin"), test_bytes(300_000, 1))?;

    // Recursive put of a directory into a new name.
    cluster.dfs_ok(&["put", tree.to_str().unwrap(), "/t"]);
    assert_eq!(cluster.dfs_ok(&["cat", "/t/a.txt"]), "hello\n");
    let ls = cluster.dfs_ok(&["ls", "-R", "/t"]);
    assert!(ls.contains("/t/sub/b.bin") && ls.contains("/t/a.txt"), "{ls}");

    // JSON listing, WebHDFS shape.
    let json: serde_json::Value = serde_json::from_str(&cluster.dfs_ok(&["ls", "--json", "/t"]))?;
    let entries = json["FileStatuses"]["FileStatus"].as_array().expect("FileStatus array");
    assert_eq!(entries.len(), 2);
    let a = entries.iter().find(|e| e["pathSuffix"] == "a.txt").expect("a.txt listed");
    assert_eq!(a["type"], "FILE");
    assert_eq!(a["length"], 6);
    assert_eq!(a["replication"], 3);
    assert_eq!(a["blockSize"], 128 * 1024);
    assert_eq!(a["permission"], "644");
    assert!(a["modificationTime"].as_i64().unwrap_or(0) > 0);
    let sub = entries.iter().find(|e| e["pathSuffix"] == "sub").expect("sub listed");
    assert_eq!(sub["type"], "DIRECTORY");

    let st: serde_json::Value = serde_json::from_str(&cluster.dfs_ok(&["stat", "--json", "/t/sub/b.bin"]))?;
    assert_eq!(st["FileStatus"]["length"], 300_000);
    assert_eq!(cluster.dfs_ok(&["stat", "%b %r %n %F", "/t/sub/b.bin"]).trim(), "300000 3 b.bin regular file");

    // du -s: bytes and bytes x replication.
    let du = cluster.dfs_ok(&["du", "-s", "/t"]);
    assert!(du.contains("293.0 K") && du.contains("878.9 K"), "{du}");

    // setrep, chmod (octal and symbolic), chown.
    cluster.dfs_ok(&["setrep", "2", "/t"]);
    assert_eq!(cluster.dfs_ok(&["stat", "%r", "/t/a.txt"]).trim(), "2");
    cluster.dfs_ok(&["chmod", "600", "/t/a.txt"]);
    assert_eq!(cluster.dfs_ok(&["stat", "%a", "/t/a.txt"]).trim(), "600");
    cluster.dfs_ok(&["chmod", "-R", "go+r", "/t"]);
    assert_eq!(cluster.dfs_ok(&["stat", "%a", "/t/a.txt"]).trim(), "644");
    cluster.dfs_ok(&["chown", "-R", "alice:analysts", "/t"]);
    assert_eq!(cluster.dfs_ok(&["stat", "%u:%g", "/t/sub/b.bin"]).trim(), "alice:analysts");

    // touchz, test.
    cluster.dfs_ok(&["touchz", "/t/empty"]);
    assert!(cluster.dfs(&["test", "-z", "/t/empty"]).status.success());
    assert!(cluster.dfs(&["test", "-d", "/t/sub"]).status.success());
    assert!(!cluster.dfs(&["test", "-f", "/t/sub"]).status.success());
    assert!(!cluster.dfs(&["test", "-e", "/t/nothing"]).status.success());
    assert!(cluster.dfs_err(&["touchz", "/t/a.txt"]).contains("not a zero-length file"));

    // mv and cp.
    cluster.dfs_ok(&["mv", "/t/a.txt", "/t/renamed.txt"]);
    assert!(!cluster.dfs(&["test", "-e", "/t/a.txt"]).status.success());
    cluster.dfs_ok(&["cp", "/t/sub", "/copy"]);
    let original = cluster.dfs(&["cat", "/t/sub/b.bin"]).stdout;
    assert!(cluster.dfs(&["cat", "/copy/b.bin"]).stdout == original);

    // Recursive get.
    let back = local.path().join("back");
    cluster.dfs_ok(&["get", "/t", back.to_str().unwrap()]);
    assert!(std::fs::read(back.join("sub").join("b.bin"))? == original);

    // stdin upload.
    let mut child = cluster.tusk().args(["dfs", "put", "-", "/t/stdin.txt"]).stdin(Stdio::piped()).spawn()?;
    child.stdin.take().expect("stdin").write_all(b"from stdin\n")?;
    assert!(child.wait()?.success());
    assert_eq!(cluster.dfs_ok(&["cat", "/t/stdin.txt"]), "from stdin\n");

    // rm -r.
    cluster.dfs_ok(&["rm", "-r", "/copy"]);
    assert!(!cluster.dfs(&["test", "-e", "/copy"]).status.success());
    Ok(())
}

#[test]
fn cluster_status_reports_every_daemon() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).replication(2).start()?;
    let out = cluster.tusk().args(["cluster", "status", "--dir"]).arg(cluster.dir()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("namenode-0") && text.contains("datanode-1") && text.contains("2 live datanode(s)"), "{text}");
    Ok(())
}
