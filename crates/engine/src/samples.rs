//! The per-second samples a rollout's judge saw, kept as JSON lines under
//! `data_dir/samples/<deployment id>.jsonl` — the format `judge-bench --replay`
//! reads — so a real rollout can be replayed, exported (`GET
//! /api/v1/deployments/{id}/samples`) and turned into a benchmark recording.
//!
//! A diagnostic record, not state: a write that fails is logged once and the
//! rollout carries on.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rampart_core::WindowSample;

pub(crate) struct SampleRecorder {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    failed: bool,
}

/// Where a deployment's samples live.
pub(crate) fn samples_path(samples_dir: &Path, deployment_id: &str) -> PathBuf {
    samples_dir.join(format!("{deployment_id}.jsonl"))
}

impl SampleRecorder {
    pub fn new(samples_dir: &Path, deployment_id: &str) -> Self {
        Self {
            path: samples_path(samples_dir, deployment_id),
            file: None,
            failed: false,
        }
    }

    /// Appends one judged second.
    pub fn record(&mut self, sample: &WindowSample) {
        if self.failed {
            return;
        }
        if let Err(e) = self.append(sample) {
            self.failed = true;
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record the judge's samples; the rollout goes on without them");
        }
    }

    /// Makes what was recorded so far readable (called after each batch of seconds).
    pub fn flush(&mut self) {
        if let Some(file) = self.file.as_mut()
            && let Err(e) = file.flush()
            && !self.failed
        {
            self.failed = true;
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record the judge's samples");
        }
    }

    fn append(&mut self, sample: &WindowSample) -> std::io::Result<()> {
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.file.insert(BufWriter::new(file))
            }
        };
        serde_json::to_writer(&mut *file, sample)?;
        file.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::{SetSample, Timestamp};

    #[test]
    fn recorded_seconds_read_back_as_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut recorder = SampleRecorder::new(dir.path(), "d1");
        for t in 0..3u64 {
            recorder.record(&WindowSample {
                start: Timestamp(t * 1_000),
                end: Timestamp((t + 1) * 1_000),
                stable: SetSample {
                    requests: 90,
                    ..SetSample::default()
                },
                canary: SetSample::default(),
            });
        }
        recorder.flush();
        let text = std::fs::read_to_string(samples_path(dir.path(), "d1")).expect("read");
        let back: Vec<WindowSample> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a WindowSample"))
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].start, Timestamp(2_000));
        assert_eq!(back[0].stable.requests, 90);
    }
}
