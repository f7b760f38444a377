//! Bad input gets one clear error line and changes nothing.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;
use tusk_tests::{TestCluster, test_bytes, wait_until};

fn listing(cluster: &TestCluster) -> String {
    cluster.dfs_ok(&["ls", "-R", "/"])
}

#[test]
fn bad_commands_fail_clearly_and_change_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().start()?;
    let local = tempfile::tempdir()?;
    let src = local.path().join("f.txt");
    std::fs::write(&src, b"new content\n")?;
    cluster.dfs_ok(&["mkdir", "-p", "/d/sub"]);
    cluster.dfs_ok(&["put", src.to_str().unwrap(), "/d/existing"]);
    cluster.dfs_ok(&["put", src.to_str().unwrap(), "/d/other"]);
    let before = listing(&cluster);
    let missing_local = local.path().join("x");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["put", src.to_str().unwrap(), "/d/existing"], "/d/existing: file exists"),
        (vec!["get", "/d/missing", missing_local.to_str().unwrap()], "/d/missing: no such file or directory"),
        (vec!["cat", "/nope"], "/nope: no such file or directory"),
        (vec!["rm", "/d"], "/d: directory is not empty"),
        (vec!["mv", "/d/other", "/d/existing"], "/d/existing"),
        (vec!["mkdir", "/a/../b"], "invalid path"),
        (vec!["mkdir", "/a//b"], "empty path component"),
        (vec!["put", src.to_str().unwrap(), "/x/../y"], "invalid path"),
        (vec!["mkdir", "/missing-parent/child"], "/missing-parent"),
        (vec!["setrep", "0", "/d/existing"], "replication"),
    ];
    for (args, want) in &cases {
        let err = cluster.dfs_err(args);
        let line = err.trim();
        assert!(line.starts_with("tusk: "), "{args:?}: {line}");
        assert_eq!(line.lines().count(), 1, "{args:?}: one line expected: {line}");
        assert!(line.contains(want), "{args:?}: expected '{want}' in: {line}");
    }
    assert_eq!(listing(&cluster), before, "a failed command changed the namespace");
    assert_eq!(cluster.dfs_ok(&["cat", "/d/existing"]), "new content\n");
    // A file may be overwritten with -f.
    std::fs::write(&src, b"replaced\n")?;
    cluster.dfs_ok(&["put", "-f", src.to_str().unwrap(), "/d/existing"]);
    assert_eq!(cluster.dfs_ok(&["cat", "/d/existing"]), "replaced\n");
    Ok(())
}

#[test]
fn an_interrupted_upload_leaves_no_file_under_the_target_name() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(256 * 1024).start()?;
    let mut child = cluster
        .tusk()
        .args(["dfs", "put", "-", "/interrupted.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&test_bytes(3 << 20, 5))?;
    stdin.flush()?;
    // The upload is under way once its temporary file holds bytes.
    wait_until(Duration::from_secs(30), || {
        let out = cluster.dfs(&["ls", "/"]);
        String::from_utf8_lossy(&out.stdout).contains("interrupted.bin._COPYING_")
    })?;
    child.kill()?;
    child.wait()?;
    assert!(!cluster.dfs(&["test", "-e", "/interrupted.bin"]).status.success(), "a partial upload is visible under the target name");
    Ok(())
}

#[test]
fn a_missing_namenode_is_named_in_the_error() {
    let out = std::process::Command::new(tusk_tests::tusk_bin().expect("tusk binary"))
        .args(["dfs", "ls", "/"])
        .env_remove("TUSK_NAMENODE")
        .env_remove("TUSK_CONF")
        .output()
        .expect("run tusk");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TUSK_NAMENODE") && err.contains("--namenode"), "{err}");
}
