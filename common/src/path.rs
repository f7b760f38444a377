//! Rules for DFS paths. A valid path is absolute, and none of its components
//! is empty, `.` or `..`, or contains `:` or NUL. One trailing `/` is
//! tolerated and dropped. The namenode and the client apply the same rules,
//! so a bad path is refused before anything changes.

/// A path that breaks the rules, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: invalid path: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

/// Longest allowed path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// Checks `path` and returns it in canonical form (no trailing slash except
/// for the root).
pub fn normalize(path: &str) -> Result<String, PathError> {
    let err = |reason| PathError { path: path.to_string(), reason };
    if !path.starts_with('/') {
        return Err(err("not absolute"));
    }
    if path == "/" {
        return Ok("/".to_string());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    for c in trimmed[1..].split('/') {
        match c {
            "" => return Err(err("empty path component")),
            "." | ".." => return Err(err("'.' and '..' are not allowed")),
            _ if c.contains(':') || c.contains('\0') => return Err(err("':' and NUL are not allowed in names")),
            _ if c.len() > MAX_COMPONENT_LEN => return Err(err("a component is longer than 255 bytes")),
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

/// The components of a normalized path (none for the root).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// Parent of a normalized path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Last component of a normalized path ("" for the root).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Joins a normalized directory and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") }
}

/// True when `path` is `ancestor` or lies below it.
pub fn is_ancestor_or_self(ancestor: &str, path: &str) -> bool {
    ancestor == "/" || path == ancestor || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths_normalize() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a/b/").unwrap(), "/a/b");
        assert_eq!(normalize("/a.b/c-d_e").unwrap(), "/a.b/c-d_e");
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for (p, why) in [
            ("a/b", "not absolute"),
            ("/a//b", "empty"),
            ("/a/../b", "'..'"),
            ("/a/./b", "'.'"),
            ("/a:b", "':'"),
        ] {
            let e = normalize(p).unwrap_err();
            assert!(e.to_string().contains(why), "{p}: {e}");
            assert!(e.to_string().starts_with(p), "{e}");
        }
        assert!(normalize(&format!("/{}", "x".repeat(256))).is_err());
    }

    #[test]
    fn parents_names_and_ancestry() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
        assert!(is_ancestor_or_self("/a", "/a/b"));
        assert!(!is_ancestor_or_self("/a", "/ab"));
        assert!(is_ancestor_or_self("/", "/ab"));
        assert_eq!(components("/a/b").collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
