//! Turns a job's [`Program`] into the runner that executes it: the
//! identity function, a Hadoop Streaming command ([`crate::streaming`]) or
//! a built-in function ([`crate::builtin`]).

use crate::api::{Emit, GroupedReader, MapRunner, RecordReader, ReduceRole, ReduceRunner, TaskContext};
use crate::builtin;
use crate::error::{Result, TaskError};
use crate::spec::Program;
use crate::streaming::{StreamingMap, StreamingReduce};

#[cfg(test)]
pub(crate) mod memio;

/// The runner of a map program.
pub fn map_runner(p: &Program) -> Result<Box<dyn MapRunner>> {
    match p {
        Program::Identity => Ok(Box::new(IdentityMap)),
        Program::Command { command } => Ok(Box::new(StreamingMap::new(command)?)),
        Program::Builtin { name, args } => builtin::map(name, args),
    }
}

/// The runner of a reduce program, or of a combiner when `role` is
/// [`ReduceRole::Combine`].
pub fn reduce_runner(p: &Program, role: ReduceRole) -> Result<Box<dyn ReduceRunner>> {
    match p {
        Program::Identity => Ok(Box::new(IdentityReduce)),
        Program::Command { command } => Ok(Box::new(StreamingReduce::new(command, role)?)),
        Program::Builtin { name, args } => builtin::reduce(name, args, role),
    }
}

/// Passes every input record through (Hadoop's IdentityMapper).
struct IdentityMap;

impl MapRunner for IdentityMap {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let (mut key, mut value) = (Vec::new(), Vec::new());
        while input.next(&mut key, &mut value)? {
            out.emit(&key, &value)?;
        }
        Ok(())
    }
}

/// Emits every value of every group under its key (Hadoop's IdentityReducer).
struct IdentityReduce;

impl ReduceRunner for IdentityReduce {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let mut key = Vec::new();
        while input.next_key()? {
            key.clear();
            key.extend_from_slice(input.key());
            while let Some(v) = input.next_value()? {
                out.emit(&key, v)?;
            }
        }
        Ok(())
    }
}

/// Refuses an empty streaming command before anything runs.
pub(crate) fn check_command(command: &str, what: &str) -> Result<()> {
    if command.trim().is_empty() {
        return Err(TaskError::Invalid(format!("{what} command is empty")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::memio::{VecEmit, VecReader, context, grouped, records};
    use super::*;

    #[test]
    fn identity_map_passes_records_through() {
        let input = records(&[("a", "1"), ("b", "2")]);
        let mut reader = VecReader::new(input.clone());
        let mut out = VecEmit::default();
        map_runner(&Program::Identity).unwrap().run(&mut reader, &mut out, &context(true)).unwrap();
        assert_eq!(out.records, input);
    }

    #[test]
    fn identity_reduce_emits_every_value() {
        let mut input = grouped(&[("a", &["1", "2"]), ("b", &["3"])]);
        let mut out = VecEmit::default();
        reduce_runner(&Program::Identity, ReduceRole::Reduce)
            .unwrap()
            .run(&mut input, &mut out, &context(false))
            .unwrap();
        assert_eq!(out.records, records(&[("a", "1"), ("a", "2"), ("b", "3")]));
    }

    #[test]
    fn empty_command_and_unknown_builtin_are_refused() {
        let err = map_runner(&Program::Command { command: "  ".into() }).err().unwrap();
        assert!(err.to_string().contains("mapper command is empty"), "{err}");
        let err = map_runner(&Program::Builtin { name: "nope".into(), args: vec![] }).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("'nope'") && msg.contains("wordcount") && msg.contains("teragen"), "{msg}");
        let err = reduce_runner(&Program::Builtin { name: "wordcount".into(), args: vec![] }, ReduceRole::Reduce)
            .err()
            .unwrap();
        assert!(err.to_string().contains("sum"), "{err}");
    }
}
