#![doc = include_str!("../README.md")]

mod commit;
mod dfs;
mod error;
mod metastore;
mod ops;
pub mod paths;
mod service;
mod store;

pub use error::{MetastoreError, Result};
pub use metastore::Metastore;
pub use service::{MetastoreService, server};
