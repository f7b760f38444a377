//! Job, task and attempt ids, Hadoop style:
//! `job_<jtStartMs>_<seq:04>`, `task_<jtStartMs>_<seq:04>_<stage>_<idx:06>`,
//! `attempt_<jtStartMs>_<seq:04>_<stage>_<idx:06>_<n>`. `jtStartMs` is the
//! jobtracker's first start time (persisted), so ids never repeat.

/// `job_<start>_<seq:04>`.
pub(crate) fn job_id(start_ms: i64, seq: u32) -> String {
    format!("job_{start_ms}_{seq:04}")
}

/// `task_<start>_<seq>_<letter>_<index:06>` of job `job_id`.
pub(crate) fn task_id(job_id: &str, letter: &str, index: u32) -> String {
    let body = job_id.strip_prefix("job_").unwrap_or(job_id);
    format!("task_{body}_{letter}_{index:06}")
}

/// `attempt_<...>_<n>` of task `task_id`.
pub(crate) fn attempt_id(task_id: &str, number: u32) -> String {
    let body = task_id.strip_prefix("task_").unwrap_or(task_id);
    format!("attempt_{body}_{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_hadoop_layout() {
        let j = job_id(1700000000000, 7);
        assert_eq!(j, "job_1700000000000_0007");
        let t = task_id(&j, "m", 3);
        assert_eq!(t, "task_1700000000000_0007_m_000003");
        assert_eq!(attempt_id(&t, 1), "attempt_1700000000000_0007_m_000003_1");
        assert_eq!(task_id(&j, "r", 12), "task_1700000000000_0007_r_000012");
        assert_eq!(job_id(1, 12345), "job_1_12345");
    }
}
