#![doc = include_str!("../README.md")]

mod blocks;
mod checkpointer;
mod config;
mod datanodes;
mod decommission;
mod editlog;
mod error;
mod idmap;
mod image;
mod lease_monitor;
mod namespace;
mod namesystem;
mod replication;
mod safemode;
mod server;
mod service;
mod storage;
mod topology;

pub mod bench;

#[cfg(test)]
mod tests;

pub use config::NamenodeConfig;
pub use error::NamenodeError;
pub use server::{NamenodeHandle, start};
pub use storage::format;
