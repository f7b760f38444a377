//! The environment of a streaming command: the job configuration with
//! every character outside `[A-Za-z0-9_]` turned into `_`
//! (`mapreduce.job.id` -> `mapreduce_job_id`), the task's own variables
//! (with their Hadoop 1 names too, for old scripts), the job's `-cmdenv`
//! settings, and `PATH` prefixed by the working directory.

use crate::api::TaskContext;
use crate::spec::{Split, TaskKind};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

/// A configuration key as an environment variable name (Hadoop's
/// `safeEnvVarName`).
pub(crate) fn env_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// Variables to set on top of the task process's own environment; later
/// sources win: job configuration < task variables < `-cmdenv`.
pub(crate) fn command_env(ctx: &TaskContext, inherited_path: Option<OsString>) -> BTreeMap<String, OsString> {
    let mut env: BTreeMap<String, OsString> = BTreeMap::new();
    for (k, v) in &ctx.spec.job.conf {
        env.insert(env_name(k), v.into());
    }
    for (k, v) in task_vars(ctx) {
        env.insert(k.to_string(), v.into());
    }
    for (k, v) in &ctx.spec.job.env {
        env.insert(k.clone(), v.into());
    }
    let base = env.remove("PATH").or(inherited_path);
    env.insert("PATH".to_string(), prefixed_path(&ctx.work_dir, base));
    env
}

/// `mapreduce_job_id`, `mapreduce_task_id`, ... and their Hadoop 1 names.
fn task_vars(ctx: &TaskContext) -> Vec<(&'static str, String)> {
    let spec = &ctx.spec;
    let (is_map, partition) = match &spec.kind {
        TaskKind::Map { index, .. } => (true, *index),
        TaskKind::Reduce { partition, .. } => (false, *partition),
    };
    let mut vars = vec![
        ("mapreduce_job_id", spec.job_id.clone()),
        ("mapreduce_task_id", spec.task_id.clone()),
        ("mapreduce_task_attempt_id", spec.attempt_id.clone()),
        ("mapreduce_task_partition", partition.to_string()),
        ("mapreduce_task_ismap", is_map.to_string()),
        ("mapreduce_job_user_name", spec.user.clone()),
        ("mapred_job_id", spec.job_id.clone()),
        ("mapred_tip_id", spec.task_id.clone()),
        ("mapred_task_id", spec.attempt_id.clone()),
        ("mapred_task_partition", partition.to_string()),
        ("mapred_task_is_map", is_map.to_string()),
    ];
    if !spec.job.name.is_empty() {
        vars.push(("mapreduce_job_name", spec.job.name.clone()));
    }
    if let TaskKind::Map { split, .. } = &spec.kind {
        let (file, start, length) = match split {
            Split::File { path, start, length, .. } => {
                let file = if ctx.input_file.is_empty() { path.clone() } else { ctx.input_file.clone() };
                (file, *start, *length)
            }
            Split::Range { first_row, rows } => (ctx.input_file.clone(), *first_row, *rows),
        };
        vars.extend([
            ("mapreduce_map_input_file", file.clone()),
            ("mapreduce_map_input_start", start.to_string()),
            ("mapreduce_map_input_length", length.to_string()),
            ("map_input_file", file),
            ("map_input_start", start.to_string()),
            ("map_input_length", length.to_string()),
        ]);
    }
    vars
}

/// `work_dir:PATH` (absolute work dir, so `-mapper mapper.py` with
/// `-file mapper.py` is found wherever the command changes directory).
fn prefixed_path(work_dir: &Path, base: Option<OsString>) -> OsString {
    let dir = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    let mut path = OsString::from(dir.as_os_str());
    if let Some(base) = base.filter(|b| !b.is_empty()) {
        path.push(":");
        path.push(base);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memio::context;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(env_name("mapreduce.job.id"), "mapreduce_job_id");
        assert_eq!(env_name("my-key.x/y z"), "my_key_x_y_z");
        assert_eq!(env_name("A_b9"), "A_b9");
    }

    #[test]
    fn env_of_a_map_task() {
        let mut ctx = context(true);
        ctx.work_dir = "/w/work".into();
        ctx.spec.job.conf.insert("my.setting".into(), "7".into());
        ctx.spec.job.conf.insert("mapreduce.task.id".into(), "spoofed".into());
        ctx.spec.job.env.insert("CMDENV_X".into(), "y".into());
        let env = command_env(&ctx, Some("/usr/bin:/bin".into()));
        let get = |k: &str| env.get(k).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        assert_eq!(get("my_setting"), "7");
        assert_eq!(get("mapreduce_task_id"), "task_17_0001_m_000003", "task variables win over conf");
        assert_eq!(get("mapreduce_task_attempt_id"), "attempt_17_0001_m_000003_0");
        assert_eq!(get("mapreduce_task_partition"), "3");
        assert_eq!(get("mapreduce_task_ismap"), "true");
        assert_eq!(get("mapreduce_job_id"), "job_17_0001");
        assert_eq!(get("mapreduce_map_input_file"), "/in/part-0");
        assert_eq!(get("mapreduce_map_input_start"), "128");
        assert_eq!(get("mapreduce_map_input_length"), "256");
        assert_eq!(get("mapred_task_id"), "attempt_17_0001_m_000003_0");
        assert_eq!(get("CMDENV_X"), "y");
        assert_eq!(get("PATH"), "/w/work:/usr/bin:/bin");
    }

    #[test]
    fn env_of_a_reduce_task_and_cmdenv_path() {
        let mut ctx = context(false);
        ctx.work_dir = "/w/work".into();
        ctx.spec.job.env.insert("PATH".into(), "/opt/bin".into());
        let env = command_env(&ctx, None);
        assert_eq!(env["mapreduce_task_ismap"], "false");
        assert_eq!(env["mapreduce_task_partition"], "2");
        assert!(!env.contains_key("mapreduce_map_input_file"));
        assert_eq!(env["PATH"], "/w/work:/opt/bin");
    }
}
