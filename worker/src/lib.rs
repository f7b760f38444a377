#![doc = include_str!("../README.md")]

mod attempt;
mod config;
mod error;
mod jobtracker;
mod logs;
mod runtime;
mod server;
mod service;
mod shuffle;
mod worker;

pub use config::WorkerConfig;
pub use error::{Result, WorkerError};
pub use server::{WorkerHandle, start};
