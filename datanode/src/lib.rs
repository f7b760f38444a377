#![doc = include_str!("../README.md")]

mod config;
mod error;
mod nn_actor;
mod server;
mod storage;
#[cfg(test)]
mod test_client;
mod transfer;

pub use config::DatanodeConfig;
pub use error::DatanodeError;
pub use server::{DatanodeHandle, start};
