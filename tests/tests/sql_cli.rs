//! `tusk sql` end to end, as the Hive CLI is used: `-e` with several
//! statements, every `--format`, `-f` scripts with `--hivevar`, errors with
//! their position and exit status 1, and a script on stdin.

use std::io::Write;
use std::process::{Output, Stdio};
use tusk_tests::TestCluster;

fn sql(cluster: &TestCluster, args: &[&str]) -> Output {
    cluster.run(&[&["sql"], args].concat())
}

/// Runs `tusk sql <args>`, fails unless it succeeds; returns stdout.
fn sql_ok(cluster: &TestCluster, args: &[&str]) -> String {
    let out = sql(cluster, args);
    assert!(out.status.success(), "tusk sql {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tusk sql <args>`, expects exit status 1; returns (stdout, stderr).
fn sql_err(cluster: &TestCluster, args: &[&str]) -> (String, String) {
    let out = sql(cluster, args);
    assert_eq!(out.status.code(), Some(1), "tusk sql {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn sql_command_runs_statements_scripts_and_stdin() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;

    // Several statements in one -e: only the rows reach stdout, the status
    // lines go to stderr.
    let out = sql(
        &cluster,
        &[
            "--format",
            "csv",
            "-e",
            "CREATE TABLE t (a INT, b STRING) STORED AS PARQUET; \
             INSERT INTO t VALUES (1,'x'),(2,NULL); SELECT * FROM t ORDER BY a",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a,b\n1,x\n2,\n");
    assert!(stderr.contains("2 rows ("), "{stderr}");

    // Every format.
    let select = "SELECT * FROM t ORDER BY a";
    assert_eq!(sql_ok(&cluster, &["--format", "tsv", "-e", select]), "a\tb\n1\tx\n2\tNULL\n");
    assert_eq!(sql_ok(&cluster, &["--format=json", "-e", select]), "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":null}\n");
    let table = sql_ok(&cluster, &["-e", select]);
    assert!(table.contains("| a | b    |") && table.contains("| 2 | NULL |"), "{table}");
    // No rows: the header still.
    assert_eq!(sql_ok(&cluster, &["--format", "csv", "-e", "SELECT * FROM t WHERE a > 5"]), "a,b\n");

    // A script with variables in every spelling; comments and blank lines.
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("query.sql");
    std::fs::write(&script, "-- which b\nSELECT b\nFROM ${tbl}\n\nWHERE a = ${hivevar:id};\nSELECT '${x}';\n")?;
    let script = script.to_str().unwrap_or_default();
    let out = sql_ok(&cluster, &["--format", "tsv", "-S", "--hivevar", "tbl=t", "-d", "id=1", "--define=x=y", "-f", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(&lines[..2], ["b", "x"]);
    assert_eq!(lines[3], "y");

    // A syntax error: its position, nothing on stdout, status 1.
    let (stdout, stderr) = sql_err(&cluster, &["-e", "SELECT 1 FROM t WHERE a = = 1"]);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("error: line 1, column 27"), "{stderr}");
    // A script stops at its first failing statement; the position is in the script.
    let (stdout, stderr) =
        sql_err(&cluster, &["--format", "tsv", "-e", "SELECT a FROM t WHERE a = 1; SELEC 2; SELECT a FROM t WHERE a = 2"]);
    assert_eq!(stdout, "a\n1\n");
    assert!(stderr.contains("error: line 1, column 30"), "{stderr}");
    // In a file, the error names it.
    let bad = dir.path().join("bad.sql");
    std::fs::write(&bad, "SELECT 1;\n\nSELEC oops;\n")?;
    let (_, stderr) = sql_err(&cluster, &["-f", bad.to_str().unwrap_or_default()]);
    assert!(stderr.contains(&format!("error: {}: line 3, column 1", bad.display())), "{stderr}");
    // A database that does not exist.
    let (_, stderr) = sql_err(&cluster, &["--database", "nosuchdb", "-e", "SELECT 1"]);
    assert!(stderr.contains("nosuchdb"), "{stderr}");

    // A script on stdin (not a terminal): run whole, as `hive -f /dev/stdin`.
    let mut child = cluster
        .tusk()
        .args(["sql", "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?.write_all(b"SELECT a, b\nFROM t\nORDER BY a DESC;\n")?;
    let out = child.wait_with_output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a,b\n2,\n1,x\n");
    Ok(())
}
