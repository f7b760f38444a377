#![doc = include_str!("../README.md")]

pub mod api;
pub mod builtin;
pub mod commit;
pub mod control;
pub mod error;
pub mod input;
pub mod mapoutput;
pub mod mapside;
pub mod output;
pub mod partition;
pub mod plan;
pub mod reduceside;
pub mod sample;
pub mod spec;
pub mod streaming;
pub mod task;
pub mod user;

pub use error::{Result, TaskError};
pub use spec::{InputFormat, JobSpec, OutputFormat, Partitioner, Program, Split, TaskKind, TaskResult, TaskSpec};
