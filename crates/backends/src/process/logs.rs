//! Size-bounded instance log files: `<name>.log`, rotated once to `<name>.log.1`.
//!
//! `log_max_bytes` bounds each stream of an instance as a whole, so each of the two
//! files holds at most half of it.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How much of stderr an error message quotes.
const TAIL_BYTES: usize = 2048;

struct BoundedLog {
    path: PathBuf,
    rotated: PathBuf,
    file: File,
    size: u64,
    per_file_limit: u64,
}

impl BoundedLog {
    async fn open(path: PathBuf, max_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let size = file.metadata().await?.len();
        Ok(Self {
            rotated: rotated_path(&path),
            path,
            file,
            size,
            per_file_limit: (max_bytes / 2).max(1),
        })
    }

    async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.size >= self.per_file_limit {
                self.rotate().await?;
            }
            let room = usize::try_from(self.per_file_limit - self.size).unwrap_or(usize::MAX);
            let (now, later) = data.split_at(room.min(data.len()));
            self.file.write_all(now).await?;
            self.size += now.len() as u64;
            data = later;
        }
        // Flushed at once so an error message can quote what the instance just wrote.
        self.file.flush().await
    }

    async fn rotate(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        tokio::fs::rename(&self.path, &self.rotated).await?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        self.size = 0;
        Ok(())
    }
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Copies a child's output stream into a bounded log file until the stream ends
/// (when every process of the group has closed it).
pub(crate) fn capture(
    mut stream: impl AsyncRead + Unpin + Send + 'static,
    path: PathBuf,
    max_bytes: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut log = match BoundedLog::open(path.clone(), max_bytes).await {
            Ok(log) => Some(log),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot open instance log; output is discarded");
                None
            }
        };
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            // Keep draining even when the file is unwritable, or the child would block
            // on a full pipe.
            if let Some(active) = log.as_mut()
                && let Err(err) = active.write(&buffer[..read]).await
            {
                tracing::warn!(path = %path.display(), %err, "cannot write instance log; output is discarded");
                log = None;
            }
        }
    })
}

/// How often the log of an instance that writes its own files is checked for size.
const ROTATE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A log file an instance writes itself (it outlives rampart, so no pipe can sit in
/// between): opened for appending, so a truncation by [`rotate_in_place`] is seen by
/// the writer's next write.
pub(crate) fn open_for_child(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Keeps a log that the instance writes itself within `max_bytes` (half per file):
/// once the file reaches its half, it is copied to `<name>.log.1` and truncated
/// (what is written between the copy and the truncation is lost, as with
/// logrotate's `copytruncate`). Runs until aborted.
pub(crate) fn rotate_in_place(path: PathBuf, max_bytes: u64) -> JoinHandle<()> {
    let per_file_limit = (max_bytes / 2).max(1);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ROTATE_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            rotate_if_full(&path, per_file_limit).await;
        }
    })
}

async fn rotate_if_full(path: &Path, per_file_limit: u64) {
    let size = match tokio::fs::metadata(path).await {
        Ok(meta) => meta.len(),
        Err(_) => return,
    };
    if size < per_file_limit {
        return;
    }
    let result = async {
        tokio::fs::copy(path, rotated_path(path)).await?;
        OpenOptions::new()
            .write(true)
            .open(path)
            .await?
            .set_len(0)
            .await
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(path = %path.display(), %err, "cannot rotate instance log");
    }
}

/// The last lines written to a log (across the rotation), for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let mut bytes = std::fs::read(rotated_path(path)).unwrap_or_default();
    bytes.extend(std::fs::read(path).unwrap_or_default());
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]);
    // Start at a line boundary unless the whole text is one partial line.
    match text.find('\n') {
        Some(newline) if start > 0 && newline + 1 < text.len() => text[newline + 1..].to_string(),
        _ => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_keeps_each_stream_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1-0.stdout.log");
        let mut log = BoundedLog::open(path.clone(), 100).await.unwrap();
        for _ in 0..10 {
            log.write(&[b'x'; 37]).await.unwrap();
        }
        let current = std::fs::metadata(&path).unwrap().len();
        let rotated = std::fs::metadata(rotated_path(&path)).unwrap().len();
        assert!(current <= 50 && rotated == 50, "{current} {rotated}");
        assert!(current + rotated <= 100);
        // 370 bytes written, 320 dropped with the older rotations: exactly the newest kept.
        assert_eq!(current + rotated, 370 - 50 * 6);
    }

    #[tokio::test]
    async fn a_log_written_by_the_instance_is_rotated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1-0.stdout.log");
        let mut writer = open_for_child(&path).unwrap();
        use std::io::Write;
        writer.write_all(&[b'x'; 40]).unwrap();
        rotate_if_full(&path, 50).await;
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            40,
            "below the limit"
        );
        writer.write_all(&[b'x'; 20]).unwrap();
        rotate_if_full(&path, 50).await;
        assert_eq!(std::fs::metadata(rotated_path(&path)).unwrap().len(), 60);
        // The writer's next write lands at the new end (append mode), not at offset 60.
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[tokio::test]
    async fn tail_reads_across_the_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1-0.stderr.log");
        let mut log = BoundedLog::open(path.clone(), 40).await.unwrap();
        log.write(b"first line\nsecond line\nthird\n")
            .await
            .unwrap();
        // 20 bytes per file: the text was split over the rotation and is read back whole.
        assert!(std::fs::metadata(rotated_path(&path)).is_ok());
        assert_eq!(tail(&path), "first line\nsecond line\nthird\n");
    }
}
