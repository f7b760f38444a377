//! Planning a job before it runs: checking its definition
//! ([`JobSpec::validate`]), expanding its input paths (files, directories,
//! globs) and cutting the input into splits along DFS blocks
//! ([`plan_splits`]), as Hadoop's `FileInputFormat.getSplits` does.

mod glob;
mod splits;

use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use tusk_client::{Client, ClientError, ErrorKind, FileStatus};
use tusk_common::path;

use crate::error::{Result, TaskError};
use crate::partition::decode_split_points;
use crate::spec::{InputFormat, JobSpec, Partitioner, Program, Split};
pub use splits::SplitSizes;
pub(crate) use splits::{file_splits, range_splits};

/// Conf key: the smallest split in bytes (default 1).
pub const MIN_SPLIT_SIZE_KEY: &str = "mapreduce.input.fileinputformat.split.minsize";
/// Conf key: the largest split in bytes (default unlimited: one block).
pub const MAX_SPLIT_SIZE_KEY: &str = "mapreduce.input.fileinputformat.split.maxsize";
/// Conf key: `true` to take the files of an input directory's
/// subdirectories too (default: subdirectories are skipped).
pub const INPUT_DIR_RECURSIVE_KEY: &str = "mapreduce.input.fileinputformat.input.dir.recursive";
/// Most reduce tasks a job may ask for.
pub const MAX_REDUCES: u32 = 100_000;
/// Block location look-ups in flight while planning many files.
const LOCATION_LOOKUPS: usize = 8;

impl JobSpec {
    /// Checks what can be checked without the filesystem: an absolute
    /// output path, input paths (unless the input is generated), the number
    /// of reducers, total order split points, split size settings and
    /// non-empty commands. The error names the offending value.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(TaskError::Invalid(m));
        if self.output.trim().is_empty() {
            return invalid("no output directory given".into());
        }
        let out = path::normalize(&self.output).map_err(|e| TaskError::Invalid(format!("output directory {e}")))?;
        if out == "/" {
            return invalid("output directory /: the root cannot be a job's output".into());
        }
        crate::output::output_replication(&self.conf)?;
        match &self.input_format {
            InputFormat::Range { maps, .. } => {
                if *maps == 0 {
                    return invalid("generated input (range) needs at least one map".into());
                }
            }
            _ => {
                if self.inputs.is_empty() {
                    return invalid("no input paths given".into());
                }
                for input in &self.inputs {
                    path::normalize(input).map_err(|e| TaskError::Invalid(format!("input path {e}")))?;
                }
            }
        }
        if self.reduces > MAX_REDUCES {
            return invalid(format!("{} reduce tasks requested; at most {MAX_REDUCES} are allowed", self.reduces));
        }
        if let (Partitioner::TotalOrder { split_points }, true) = (&self.partitioner, self.reduces > 0) {
            decode_split_points(split_points, self.reduces)?;
        }
        SplitSizes::from_conf(&self.conf)?;
        check_program("mapper", &self.mapper)?;
        if let Some(c) = &self.combiner {
            check_program("combiner", c)?;
        }
        if self.reduces > 0 {
            check_program("reducer", &self.reducer)?;
        }
        Ok(())
    }
}

fn check_program(role: &str, p: &Program) -> Result<()> {
    match p {
        Program::Command { command } if command.trim().is_empty() => {
            Err(TaskError::Invalid(format!("the {role} command is empty")))
        }
        Program::Builtin { name, .. } if name.trim().is_empty() => {
            Err(TaskError::Invalid(format!("the {role} built-in has no name")))
        }
        _ => Ok(()),
    }
}

/// The splits of a job, one map task each. Refuses an existing output
/// directory (`output directory /out already exists`), a missing input path
/// (`input path does not exist: /x`) and a glob that matches nothing
/// (`input pattern /x/* matches no files`); every input problem is named.
///
/// Files are cut into splits of `max(minsize, min(maxsize, block size))`
/// bytes, the last one up to 1.1 times that (Hadoop's SPLIT_SLOP);
/// zero-length files get no split; each split's hosts and racks are those
/// of the block where it starts. `WholeFileTera` gives one split per file,
/// `Range` `maps` splits of (nearly) equal row counts.
///
/// Only what splitting needs is checked here (the partitioner, reducers and
/// programs are [`JobSpec::validate`]'s business, so a sampler may plan a
/// job whose split points are not known yet).
pub async fn plan_splits(client: &Client, spec: &JobSpec) -> Result<Vec<Split>> {
    if stat_if_exists(client, &spec.output).await?.is_some() {
        let out = path::normalize(&spec.output).unwrap_or_else(|_| spec.output.clone());
        return Err(TaskError::Invalid(format!("output directory {out} already exists")));
    }
    if let InputFormat::Range { rows, maps } = spec.input_format {
        return Ok(range_splits(rows, maps));
    }
    let sizes = SplitSizes::from_conf(&spec.conf)?;
    let splitable = !matches!(spec.input_format, InputFormat::WholeFileTera);
    let recursive = spec.conf.get(INPUT_DIR_RECURSIVE_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let files = input_files(client, &spec.inputs, recursive).await?;
    let per_file: Vec<Vec<Split>> = futures::stream::iter(files.into_iter().filter(|f| f.length > 0))
        .map(|f| async move {
            let blocks = client.block_locations(&f.path, 0, 0).await?;
            Ok::<_, TaskError>(file_splits(&f.path, f.length, f.block_size, &blocks, sizes, splitable))
        })
        .buffered(LOCATION_LOOKUPS)
        .try_collect()
        .await?;
    Ok(per_file.into_iter().flatten().collect())
}

/// The files named by `inputs`, in input order (a glob's matches sorted):
/// files as they are, directories' non-hidden files (and, with `recursive`,
/// their subdirectories' files), glob matches likewise. Every missing
/// input is reported in one error.
pub(crate) async fn input_files(client: &Client, inputs: &[String], recursive: bool) -> Result<Vec<FileStatus>> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        let p = path::normalize(input).map_err(|e| TaskError::Invalid(format!("input path {e}")))?;
        let matches = if glob::has_magic(&p) {
            let found = glob::glob(client, &p).await?;
            let visible: Vec<FileStatus> = found.into_iter().filter(|s| !is_hidden(&s.name)).collect();
            if visible.is_empty() {
                problems.push(format!("input pattern {input} matches no files"));
            }
            visible
        } else {
            match stat_if_exists(client, &p).await? {
                Some(st) => vec![st],
                None => {
                    problems.push(format!("input path does not exist: {p}"));
                    Vec::new()
                }
            }
        };
        for st in matches {
            if st.is_dir {
                dir_files(client, &st.path, recursive, &mut files).await?;
            } else {
                files.push(st);
            }
        }
    }
    if !problems.is_empty() {
        return Err(TaskError::Invalid(problems.join("; ")));
    }
    Ok(files)
}

/// Appends the non-hidden files of directory `dir` (sorted by name) to
/// `out`; subdirectories are descended into only with `recursive`.
async fn dir_files(client: &Client, dir: &str, recursive: bool, out: &mut Vec<FileStatus>) -> Result<()> {
    let mut pending = vec![dir.to_string()];
    // Depth first, keeping name order: a directory's files before the next sibling's.
    let mut found: BTreeMap<String, FileStatus> = BTreeMap::new();
    while let Some(d) = pending.pop() {
        for e in client.list(&d).await? {
            if is_hidden(&e.name) {
                continue;
            }
            if !e.is_dir {
                found.insert(e.path.clone(), e);
            } else if recursive {
                pending.push(e.path);
            }
        }
    }
    out.extend(found.into_values());
    Ok(())
}

/// Hadoop's hidden-file filter: names starting with `_` or `.` are not
/// input (`_SUCCESS`, `_logs`, `.staging`).
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// The status of `p`, `None` when it does not exist (a path below a file
/// does not exist either).
pub(crate) async fn stat_if_exists(client: &Client, p: &str) -> Result<Option<FileStatus>> {
    match client.try_stat(p).await {
        Ok(s) => Ok(s),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// True when a DFS error only says the path is not there.
pub(crate) fn is_missing(e: &ClientError) -> bool {
    matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::NotADirectory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::OutputFormat;

    fn job() -> JobSpec {
        JobSpec { inputs: vec!["/in".into()], output: "/out".into(), ..Default::default() }
    }

    fn err(spec: &JobSpec) -> String {
        spec.validate().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_plain_job_is_valid() {
        job().validate().unwrap();
        let spec = JobSpec { reduces: 0, output_format: OutputFormat::Raw, ..job() };
        spec.validate().unwrap();
    }

    #[test]
    fn output_must_be_an_absolute_path_other_than_the_root() {
        assert_eq!(err(&JobSpec { output: " ".into(), ..job() }), "no output directory given");
        assert!(err(&JobSpec { output: "out".into(), ..job() }).contains("output directory out: invalid path: not absolute"));
        assert!(err(&JobSpec { output: "/".into(), ..job() }).contains("root"));
        assert!(err(&JobSpec { output: "/a/../b".into(), ..job() }).contains("/a/../b"));
    }

    #[test]
    fn output_replication_must_be_a_positive_number() {
        let with = |v: &str| JobSpec { conf: [("dfs.replication".to_string(), v.to_string())].into(), ..job() };
        with("1").validate().unwrap();
        assert!(err(&with("0")).contains("dfs.replication=0"), "{}", err(&with("0")));
        assert!(err(&with("three")).contains("dfs.replication=three"));
    }

    #[test]
    fn inputs_are_needed_unless_generated() {
        assert_eq!(err(&JobSpec { inputs: vec![], ..job() }), "no input paths given");
        assert!(err(&JobSpec { inputs: vec!["/a".into(), "rel".into()], ..job() }).contains("input path rel: invalid path"));
        let generated = JobSpec { inputs: vec![], input_format: InputFormat::Range { rows: 10, maps: 2 }, ..job() };
        generated.validate().unwrap();
        let none = JobSpec { input_format: InputFormat::Range { rows: 10, maps: 0 }, ..generated };
        assert!(err(&none).contains("at least one map"));
        // Globs are paths too.
        JobSpec { inputs: vec!["/logs/2024-*/part-{0,1}[0-9]".into()], ..job() }.validate().unwrap();
    }

    #[test]
    fn reducer_count_and_split_points_are_checked() {
        assert!(err(&JobSpec { reduces: MAX_REDUCES + 1, ..job() }).contains("at most 100000"));
        JobSpec { reduces: MAX_REDUCES, ..job() }.validate().unwrap();
        let sp = |v: &[&str]| Partitioner::TotalOrder { split_points: v.iter().map(|s| s.to_string()).collect() };
        let ok = JobSpec { reduces: 3, partitioner: sp(&["10", "20"]), ..job() };
        ok.validate().unwrap();
        assert!(err(&JobSpec { partitioner: sp(&["10"]), ..ok.clone() }).contains("need 2"));
        assert!(err(&JobSpec { partitioner: sp(&["20", "10"]), ..ok.clone() }).contains("not sorted"));
        // A map-only job ignores its partitioner.
        JobSpec { reduces: 0, partitioner: sp(&["10"]), ..ok }.validate().unwrap();
    }

    #[test]
    fn split_sizes_and_commands_are_checked() {
        let mut spec = job();
        spec.conf.insert(MIN_SPLIT_SIZE_KEY.into(), "lots".into());
        assert!(err(&spec).contains(MIN_SPLIT_SIZE_KEY) && err(&spec).contains("lots"), "{}", err(&spec));
        let spec = JobSpec { mapper: Program::Command { command: "  ".into() }, ..job() };
        assert_eq!(err(&spec), "the mapper command is empty");
        let spec = JobSpec { reducer: Program::Command { command: String::new() }, ..job() };
        assert_eq!(err(&spec), "the reducer command is empty");
        // Not run, not checked.
        JobSpec { reduces: 0, ..spec }.validate().unwrap();
        let spec = JobSpec { combiner: Some(Program::Builtin { name: String::new(), args: vec![] }), ..job() };
        assert!(err(&spec).contains("combiner"));
    }

    #[test]
    fn hidden_names_start_with_underscore_or_dot() {
        for n in ["_SUCCESS", "_temporary", ".staging", "."] {
            assert!(is_hidden(n), "{n}");
        }
        for n in ["part-r-00000", "a_b", "x.txt"] {
            assert!(!is_hidden(n), "{n}");
        }
    }
}
