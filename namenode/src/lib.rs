#![doc = include_str!("../README.md")]

mod blocks;
mod checkpointer;
mod config;
mod datanodes;
mod editlog;
mod error;
mod idmap;
mod image;
mod namespace;
mod namesystem;
mod server;
mod service;
mod storage;

pub mod bench;

#[cfg(test)]
mod tests;

pub use config::NamenodeConfig;
pub use error::NamenodeError;
pub use server::{NamenodeHandle, start};
pub use storage::format;
