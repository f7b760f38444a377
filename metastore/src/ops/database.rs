//! CreateDatabase, DropDatabase, GetDatabase, ListDatabases.

use tusk_proto::metastore::{Database, Table};

use crate::dfs::Fs;
use crate::error::{MetastoreError, Result};
use crate::metastore::{Metastore, location, now_ms, object_name, require_database};
use crate::paths::{self, DEFAULT_DATABASE};
use crate::store::Catalog;

impl Metastore {
    /// Creates a database and its directory (`<warehouse>/<name>.db` unless
    /// given); false when it existed and `if_not_exists`.
    pub(crate) async fn create_database(&self, user: &str, db: Option<Database>, if_not_exists: bool) -> Result<bool> {
        let fs = self.dfs.as_user(user).await?;
        let mut d = db.ok_or_else(|| MetastoreError::invalid("the request names no database"))?;
        d.name = object_name("database", &d.name)?;
        let _w = self.writes.lock().await;
        if self.store.read()?.database(&d.name)?.is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(MetastoreError::AlreadyExists(format!("database already exists: {}", d.name)));
        }
        d.location = if d.location.trim().is_empty() {
            paths::default_database_location(&self.warehouse, &d.name)
        } else {
            location("LOCATION", &d.location)?
        };
        if let Some(dir) = paths::dfs_path(&d.location) {
            fs.mkdirs(dir).await?;
        }
        if d.owner.is_empty() {
            d.owner = user.to_string();
        }
        d.created_ms = now_ms();
        self.store.write_async(move |w| w.put_database(&d)).await?;
        Ok(true)
    }

    /// Drops a database: refused while it holds tables unless `cascade`,
    /// which drops them as DropTable does; its directory is deleted.
    pub(crate) async fn drop_database(&self, user: &str, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        let fs = self.dfs.as_user(user).await?;
        let name = object_name("database", name)?;
        if name == DEFAULT_DATABASE {
            return Err(MetastoreError::invalid("cannot drop the default database"));
        }
        let _w = self.writes.lock().await;
        let r = self.store.read()?;
        let Some(d) = r.database(&name)? else {
            return if if_exists { Ok(false) } else { Err(MetastoreError::database_not_found(&name)) };
        };
        let tables = r.tables(&name)?;
        if !tables.is_empty() && !cascade {
            let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            return Err(MetastoreError::Precondition(format!(
                "database {name} is not empty: it holds tables {} (use CASCADE)",
                names.join(", ")
            )));
        }
        if let Some((staging, p)) = r
            .pending_commits()?
            .into_iter()
            .find(|(_, p)| p.request.as_ref().and_then(|q| q.table.as_ref()).is_some_and(|t| t.db == name))
        {
            let t = p.request.and_then(|q| q.table).map(|t| t.name).unwrap_or_default();
            return Err(MetastoreError::Precondition(format!(
                "database {name}: a commit into {name}.{t} (staging {staging}) is unfinished and being retried; try again later"
            )));
        }
        drop(r);
        for t in &tables {
            delete_table_data(&fs, t).await?;
        }
        if let Some(dir) = paths::dfs_path(&d.location) {
            fs.delete(dir).await?;
        }
        self.store
            .write_async(move |w| {
                for t in &tables {
                    w.delete_table(&t.db, &t.name)?;
                }
                w.delete_database(&name)?;
                Ok(())
            })
            .await?;
        Ok(true)
    }

    pub(crate) fn get_database(&self, name: &str) -> Result<Database> {
        let name = object_name("database", name)?;
        require_database(&self.store.read()?, &name)
    }

    pub(crate) fn list_databases(&self) -> Result<Vec<Database>> {
        self.store.read()?.databases()
    }
}

/// Deletes what DROP TABLE deletes: nothing of an external table; of a
/// managed one its directory, with the partitions inside it (Hive keeps
/// partitions with a location of their own outside the table).
pub(crate) async fn delete_table_data(fs: &Fs, t: &Table) -> Result<()> {
    if !t.external
        && let Some(dir) = paths::dfs_path(&t.location)
    {
        fs.delete(dir).await?;
    }
    Ok(())
}
