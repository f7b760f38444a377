use super::*;

#[test]
fn escaping_follows_hive() {
    // Examples from Hive's TestFileUtils / partition directory names.
    assert_eq!(escape_path_name("abc"), "abc");
    assert_eq!(escape_path_name("a b"), "a b");
    assert_eq!(escape_path_name("2024-01-01 10:00:00"), "2024-01-01 10%3A00%3A00");
    assert_eq!(escape_path_name("a/b"), "a%2Fb");
    assert_eq!(escape_path_name("x=y"), "x%3Dy");
    assert_eq!(escape_path_name("100%"), "100%25");
    assert_eq!(escape_path_name("\"#'*?\\{[]^"), "%22%23%27%2A%3F%5C%7B%5B%5D%5E");
    assert_eq!(escape_path_name("tab\there"), "tab%09here");
    assert_eq!(escape_path_name("\u{1}\u{1f}\u{7f}"), "%01%1F%7F");
    // Not escaped: non-ASCII, and characters Hive leaves alone on Unix.
    assert_eq!(escape_path_name("café-ü_~!@$&()+,;<>|}"), "café-ü_~!@$&()+,;<>|}");
    assert_eq!(escape_path_name(""), DEFAULT_PARTITION);
}

#[test]
fn unescaping_reverses_escaping() {
    for s in ["abc", "a/b=c:d", "100%", "%%%", "x%2", "\u{1}\u{7f}", "a%2Fb", "é/ü", "{[]}^", "'\"", "\\"] {
        assert_eq!(unescape_path_name(&escape_path_name(s)), s, "round trip of {s:?}");
    }
    // Lower-case hex is accepted; broken escapes stay as written.
    assert_eq!(unescape_path_name("a%2fb"), "a/b");
    assert_eq!(unescape_path_name("%zz%4"), "%zz%4");
    assert_eq!(unescape_path_name("%"), "%");
    assert_eq!(unescape_path_name("%41%42"), "AB");
    // Escaped UTF-8 bytes decode to the character.
    assert_eq!(unescape_path_name("%C3%A9"), "é");
}

#[test]
fn partition_paths_round_trip() {
    let names = ["dt", "Country"];
    let values = ["2024-01-01 00:00", "a/b"];
    let p = partition_path(&names, &values);
    assert_eq!(p, "dt=2024-01-01 00%3A00/country=a%2Fb");
    assert_eq!(parse_partition_path(&p, &["dt", "country"]), Some(vec![values[0].to_string(), values[1].to_string()]));
    assert_eq!(parse_partition_path(&format!("{p}/"), &["dt", "country"]).map(|v| v.len()), Some(2));
    assert_eq!(partition_path(&["dt"], &[""]), "dt=__HIVE_DEFAULT_PARTITION__");
    assert_eq!(
        parse_partition_path("dt=__HIVE_DEFAULT_PARTITION__", &["dt"]),
        Some(vec![DEFAULT_PARTITION.to_string()])
    );
}

#[test]
fn partition_paths_of_another_shape_are_refused() {
    assert_eq!(parse_partition_path("dt=1", &["dt", "hr"]), None);
    assert_eq!(parse_partition_path("dt=1/hr=2/x=3", &["dt", "hr"]), None);
    assert_eq!(parse_partition_path("hr=2/dt=1", &["dt", "hr"]), None);
    assert_eq!(parse_partition_path("dt", &["dt"]), None);
    assert_eq!(parse_partition_path("dt=", &["dt"]), None);
    assert_eq!(parse_partition_path("", &["dt"]), None);
    assert_eq!(parse_partition_path("", &[] as &[&str]), Some(vec![]));
    assert_eq!(parse_partition_path("DT=x", &["dt"]), Some(vec!["x".to_string()]));
    assert_eq!(parse_partition_component("dt=a=b", "dt"), Some("a=b".to_string()));
}

#[test]
fn locations_follow_hive() {
    let wh = "/user/hive/warehouse";
    assert_eq!(default_database_location(wh, "default"), "/user/hive/warehouse");
    assert_eq!(default_database_location(wh, "sales"), "/user/hive/warehouse/sales.db");
    assert_eq!(default_table_location("/user/hive/warehouse", "t"), "/user/hive/warehouse/t");
    assert_eq!(default_table_location("/", "t"), "/t");
    assert_eq!(default_partition_location("/w/t", &["dt"], &["x y"]), "/w/t/dt=x y");
    assert_eq!(table_ref_display("db", "t"), "db.t");
    assert_eq!(partition_display(&["dt", "hr"], &["x", "1"]), "(dt=x, hr=1)");
}

#[test]
fn hidden_names_and_dfs_locations() {
    assert!(is_hidden("_SUCCESS") && is_hidden(".staging") && is_hidden("_temporary"));
    assert!(!is_hidden("part-00000") && !is_hidden("dt=1"));
    assert_eq!(dfs_path("/a/b"), Some("/a/b"));
    assert_eq!(dfs_path("dfs:///a/b"), Some("/a/b"));
    assert_eq!(dfs_path("dfs://nn:8020/a"), Some("/a"));
    assert_eq!(dfs_path("s3://bucket/a"), None);
    assert_eq!(dfs_path("relative/a"), None);
}
