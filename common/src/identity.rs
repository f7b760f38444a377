//! Who the local process acts as: HDFS "simple" authentication takes the
//! user from `TUSK_USER`, else from the operating system.

/// The user name and groups of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The identity of the current process: `TUSK_USER` (and `TUSK_GROUPS`,
    /// comma separated) when set, else the OS user and its primary group.
    pub fn current() -> Identity {
        let os_user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten();
        let user = std::env::var("TUSK_USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| os_user.as_ref().map(|u| u.name.clone()))
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "tusk".to_string());
        let groups = match std::env::var("TUSK_GROUPS") {
            Ok(g) if !g.is_empty() => g.split(',').map(|s| s.trim().to_string()).collect(),
            _ => os_user
                .and_then(|u| nix::unistd::Group::from_gid(u.gid).ok().flatten())
                .map(|g| vec![g.name])
                .unwrap_or_else(|| vec![user.clone()]),
        };
        Identity { user, groups }
    }
}

/// Host name of this machine, for locality ("localhost" if unknown).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}
