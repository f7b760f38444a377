//! [`ClientPool`]: one [`Client`] per user of a namenode, created on first
//! use. Daemons that act for many users (the jobtracker committing jobs,
//! the metastore moving table data) keep one pool.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::{Client, ClientConfig, Result};

/// Clients of one namenode, by user; cheap to share behind an `Arc`.
pub struct ClientPool {
    namenode: String,
    clients: Mutex<HashMap<String, Client>>,
}

impl ClientPool {
    /// A pool for the namenode at `namenode` (`host:port`). Clients connect
    /// on first use, so a namenode that is not up yet fails only the calls
    /// made meanwhile.
    pub fn new(namenode: impl Into<String>) -> ClientPool {
        ClientPool { namenode: namenode.into(), clients: Mutex::new(HashMap::new()) }
    }

    /// The namenode's address.
    pub fn namenode(&self) -> &str {
        &self.namenode
    }

    /// A client acting as `user`; "" is the process's own identity.
    pub async fn client(&self, user: &str) -> Result<Client> {
        if let Some(c) = self.lock().get(user) {
            return Ok(c.clone());
        }
        let mut config = ClientConfig::new(self.namenode.clone());
        if !user.is_empty() {
            config.user = Some(user.to_string());
        }
        let c = Client::connect(config).await?;
        Ok(self.lock().entry(user.to_string()).or_insert(c).clone())
    }

    /// The map; a panic elsewhere while it was held leaves it usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
