//! Transfer progress bars: shown on stderr only when stdout is a terminal
//! and the transfer is larger than a few MiB.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Transfers smaller than this get no bar.
const MIN_BYTES: u64 = 4 << 20;

/// A bar for `total` bytes labelled `label`, or a hidden one.
pub fn transfer_bar(total: u64, label: &str) -> ProgressBar {
    if total < MIN_BYTES || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}
