//! `tusk dfs recover-lease PATH [--retries N]` (HDFS `hdfs debug
//! recoverLease`): asks the namenode to recover a file left open by a
//! writer that went away, until the file is closed or the tries run out.

use std::process::ExitCode;
use std::time::Duration;

use super::Dfs;

/// First wait between two tries; doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The wait before try `n + 1` (after `n` tries, n >= 1).
pub fn delay_after(n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// Prints `recoverLease SUCCEEDED on PATH` (exit 0), or one
/// `recoverLease returned false` per failed try and then
/// `Giving up on recoverLease for PATH after N tries` (exit 1).
pub async fn recover_lease(dfs: &Dfs, path: &str, retries: u32) -> anyhow::Result<ExitCode> {
    let path = tusk_common::path::normalize(&dfs.resolve(path))?;
    let tries = retries.max(1);
    for n in 1..=tries {
        if dfs.client.recover_lease(&path).await? {
            println!("recoverLease SUCCEEDED on {path}");
            return Ok(ExitCode::SUCCESS);
        }
        println!("recoverLease returned false");
        if n < tries {
            tokio::time::sleep(delay_after(n)).await;
        }
    }
    println!("Giving up on recoverLease for {path} after {tries} tries");
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_cap() {
        let ms: Vec<u128> = (1..=6).map(|n| delay_after(n).as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(delay_after(100), MAX_DELAY);
    }
}
