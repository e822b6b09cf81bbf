//! The join's progress as the CLI shows it: the "joined" line, then a
//! byte progress bar on stderr, with failures printed above it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vidsync_client::apply::ApplyError;
use vidsync_client::usecase::Progress;
use vidsync_client::FolderLink;

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar { bar }
    }
}

impl Progress for Bar {
    fn linked(&self, link: &FolderLink) {
        println!(
            "joined {} ({}) in {} as {}",
            link.name,
            link.project_id,
            link.path.display(),
            link.mode.as_str()
        );
    }
    fn planned(&self, _files: usize, bytes: u64) {
        self.bar.set_length(bytes);
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn file_done(&self, done: usize, files: usize) {
        self.bar.set_message(format!("{done}/{files} files"));
    }
    fn failed(&self, path: &str, error: &ApplyError) {
        self.bar.suspend(|| eprintln!("vidsync: {path}: {error}"));
    }
    fn skipped(&self, seq: u64, error: &str) {
        self.bar
            .suspend(|| eprintln!("vidsync: event {seq} skipped: {error}"));
    }
    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}
