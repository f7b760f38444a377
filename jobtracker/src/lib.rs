#![doc = include_str!("../README.md")]

mod background;
mod config;
mod dfs;
mod engine;
mod error;
mod ids;
mod jobtracker;
mod launcher;
mod report;
mod sched;
mod server;
mod service;
mod store;
#[cfg(test)]
mod testkit;

pub use config::JobtrackerConfig;
pub use error::{JobtrackerError, Refusal};
pub use server::{JobtrackerHandle, start};
