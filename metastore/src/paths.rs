//! Where Hive keeps things: database, table and partition directories, and
//! the escaping of partition values in directory names. Pure functions, no
//! DFS: the metastore and the SQL front end (which writes partition
//! directories into a staging area) must agree on every byte of these names.

/// The value Hive stores for a NULL (or empty) partition value, and the
/// directory name component it gets (`dt=__HIVE_DEFAULT_PARTITION__`).
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The database that always exists; its tables live straight in the
/// warehouse directory.
pub const DEFAULT_DATABASE: &str = "default";

/// True for the characters Hive's `FileUtils.escapePathName` escapes: the
/// control characters, DEL, and `"#%'*/:=?\{[]^`.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'
            ..='\u{1f}'
                | '\u{7f}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

/// Escapes a partition column name or value for use as (part of) a
/// directory name, as Hive's `FileUtils.escapePathName` does: each character
/// that would break a path (`/`, `=`, `:`, `%`, control characters...)
/// becomes `%XX` (upper-case hex); everything else, non-ASCII included, is
/// kept. An empty string becomes [`DEFAULT_PARTITION`].
///
/// ```
/// use tusk_metastore::paths::escape_path_name;
/// assert_eq!(escape_path_name("2024-01-01 10:00"), "2024-01-01 10%3A00");
/// assert_eq!(escape_path_name("a/b=c"), "a%2Fb%3Dc");
/// assert_eq!(escape_path_name(""), "__HIVE_DEFAULT_PARTITION__");
/// ```
pub fn escape_path_name(s: &str) -> String {
    if s.is_empty() {
        return DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape_path_name`] (Hive's `FileUtils.unescapePathName`):
/// every `%XX` with two hex digits becomes that byte; anything else is kept
/// as is. Bytes that do not form UTF-8 are replaced by U+FFFD.
///
/// ```
/// use tusk_metastore::paths::unescape_path_name;
/// assert_eq!(unescape_path_name("a%2Fb%3dc"), "a/b=c");
/// assert_eq!(unescape_path_name("100%"), "100%");
/// ```
pub fn unescape_path_name(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The relative directory of a partition, `k1=v1/k2=v2`, names lower-cased
/// and both sides escaped with [`escape_path_name`] (Hive's
/// `FileUtils.makePartName`). `names` and `values` pair up in order; extra
/// items of the longer one are ignored.
///
/// ```
/// use tusk_metastore::paths::partition_path;
/// assert_eq!(partition_path(&["dt", "hr"], &["2024-01-01", "07"]), "dt=2024-01-01/hr=07");
/// assert_eq!(partition_path(&["c"], &["a/b"]), "c=a%2Fb");
/// ```
pub fn partition_path<N: AsRef<str>, V: AsRef<str>>(names: &[N], values: &[V]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{}={}", escape_path_name(&n.as_ref().to_lowercase()), escape_path_name(v.as_ref())))
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads the partition values back from a relative directory
/// `k1=v1/k2=v2` (one trailing `/` allowed): one `k=v` component per name of
/// `names`, in order, keys matching case-insensitively, values unescaped.
/// `None` when the path has another shape.
///
/// ```
/// use tusk_metastore::paths::parse_partition_path;
/// let v = parse_partition_path("dt=2024-01-01/hr=07", &["dt", "hr"]);
/// assert_eq!(v, Some(vec!["2024-01-01".to_string(), "07".to_string()]));
/// assert_eq!(parse_partition_path("hr=07/dt=x", &["dt", "hr"]), None);
/// ```
pub fn parse_partition_path<N: AsRef<str>>(path: &str, names: &[N]) -> Option<Vec<String>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let comps: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('/').collect() };
    if comps.len() != names.len() {
        return None;
    }
    comps.iter().zip(names).map(|(c, n)| parse_partition_component(c, n.as_ref())).collect()
}

/// The value of one `k=v` directory name when `k` is `name`
/// (case-insensitive); `None` otherwise or when the value is empty.
pub fn parse_partition_component(component: &str, name: &str) -> Option<String> {
    let (k, v) = component.split_once('=')?;
    if v.is_empty() || !unescape_path_name(k).eq_ignore_ascii_case(name) {
        return None;
    }
    Some(unescape_path_name(v))
}

/// Directory of a database's managed tables: the warehouse itself for
/// `default` (Hive semantics), `<warehouse>/<db>.db` for the others.
pub fn default_database_location(warehouse: &str, db: &str) -> String {
    if db == DEFAULT_DATABASE { warehouse.to_string() } else { join(warehouse, &format!("{db}.db")) }
}

/// Default location of a table: `<database location>/<table>`.
pub fn default_table_location(database_location: &str, table: &str) -> String {
    join(database_location, table)
}

/// Default location of a partition: `<table location>/k1=v1/...`.
pub fn default_partition_location<N: AsRef<str>, V: AsRef<str>>(
    table_location: &str,
    names: &[N],
    values: &[V],
) -> String {
    join(table_location, &partition_path(names, values))
}

/// `db.table`, as messages name a table.
pub fn table_ref_display(db: &str, table: &str) -> String {
    format!("{db}.{table}")
}

/// `(k1=v1, k2=v2)`, as messages name a partition (values unescaped).
pub fn partition_display<N: AsRef<str>, V: AsRef<str>>(names: &[N], values: &[V]) -> String {
    let parts: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{}={}", n.as_ref(), v.as_ref())).collect();
    format!("({})", parts.join(", "))
}

/// True for names Hive and Hadoop treat as hidden (`_SUCCESS`,
/// `_temporary`, `.staging`...): never data, never moved by a commit.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// The DFS path of a location: a bare absolute path, or a `dfs://` URL
/// (`dfs:///x` and `dfs://any-authority/x`). `None` for other schemes
/// (`s3://...`), which the metastore records but never touches.
pub fn dfs_path(location: &str) -> Option<&str> {
    if location.starts_with('/') {
        return Some(location);
    }
    let rest = location.strip_prefix("dfs://")?;
    let slash = rest.find('/')?;
    Some(&rest[slash..])
}

/// `dir/name` for a DFS directory (the root is `/`).
pub fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    format!("{dir}/{name}")
}

#[cfg(test)]
mod tests;
