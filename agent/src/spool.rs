//! The spool: signed envelopes awaiting the collector's receipt, one file
//! per envelope named by its zero-padded sequence number
//! (`00000000000000000042.dsse.json`), so that a directory listing sorts in
//! delivery order.
//!
//! Every file is written under a temporary name, fsync'd, renamed into
//! place and the directory fsync'd: after a crash a file is either complete
//! or absent (temporary leftovers are removed when the spool is opened).
//!
//! The spool is bounded ([`Spool::make_room`]): when a new envelope would
//! take it over the limit, every pending envelope is dropped at once. Each
//! run carries the newest result of every check, so the newer run
//! supersedes them; the dropped sequence numbers go into the new
//! envelope's signed `gap`, and the collector accepts the jump in the chain
//! only when the gap names exactly the sequences it skipped.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

/// File name suffix of spooled envelopes.
const SUFFIX: &str = ".dsse.json";

/// Errors of the spool. Every one names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SpoolError {
    /// The file or directory.
    pub path: String,
    /// The OS error.
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.display().to_string(),
        source,
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating with mode 0700) the spool directory and removes
    /// temporary files a crash left behind: they were never renamed into
    /// place, so no chain head refers to them.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(err(&dir))?;
        for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let entry = entry.map_err(err(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(err(&p))?;
            }
        }
        Ok(Spool { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a sequence number.
    pub fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }

    /// Durably writes the envelope of `seq`; returns its path.
    pub fn append(&self, seq: u64, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
        let path = self.path_of(seq);
        let tmp = self.dir.join(format!(".{seq:020}{SUFFIX}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(bytes).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
        self.sync()?;
        Ok(path)
    }

    /// Makes the directory's entries durable (a rename or removal is not
    /// on disk until the directory is synced).
    fn sync(&self) -> Result<(), SpoolError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err(&self.dir))
    }

    /// The pending envelopes, ascending by sequence number.
    pub fn pending(&self) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let entry = entry.map_err(err(&self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if stem.len() == 20
                && stem.bytes().all(|b| b.is_ascii_digit())
                && let Ok(seq) = stem.parse::<u64>()
            {
                out.push((seq, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads the envelope of `seq`.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, SpoolError> {
        let path = self.path_of(seq);
        std::fs::read(&path).map_err(err(&path))
    }

    /// Removes the envelope of `seq` (durably). Removing an absent one is
    /// not an error: a crash may have happened after the removal.
    pub fn remove(&self, seq: u64) -> Result<(), SpoolError> {
        let path = self.path_of(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(&path)(e)),
        }
    }

    /// Bytes of all pending envelopes.
    pub fn total_bytes(&self) -> Result<u64, SpoolError> {
        let mut total = 0;
        for (_, path) in self.pending()? {
            total += std::fs::metadata(&path).map_err(err(&path))?.len();
        }
        Ok(total)
    }

    /// Whether an envelope of `new_len` bytes fits beside the pending ones
    /// within `max_bytes`.
    pub fn fits(&self, new_len: u64, max_bytes: u64) -> Result<bool, SpoolError> {
        Ok(self.total_bytes()?.saturating_add(new_len) <= max_bytes)
    }

    /// Makes room for an envelope of `new_len` bytes: if it would take the
    /// spool over `max_bytes`, drops every pending envelope and returns
    /// their sequence numbers (ascending) for the new envelope's gap.
    pub fn make_room(&self, new_len: u64, max_bytes: u64) -> Result<Vec<u64>, SpoolError> {
        let planned = self.plan_room(new_len, max_bytes)?;
        self.drop_superseded(&planned, max_bytes)?;
        Ok(planned)
    }

    /// The envelopes that would have to go for an envelope of `new_len`
    /// bytes to fit (every pending one, or none), without removing them.
    /// The caller signs the new envelope with this gap, makes it and the
    /// chain head durable, and only then calls [`Spool::drop_superseded`]:
    /// a crash in between leaves valid envelopes the collector accepts in
    /// order, never a gap that was recorded nowhere.
    pub fn plan_room(&self, new_len: u64, max_bytes: u64) -> Result<Vec<u64>, SpoolError> {
        if self.fits(new_len, max_bytes)? {
            return Ok(Vec::new());
        }
        Ok(self.pending()?.into_iter().map(|(seq, _)| seq).collect())
    }

    /// Removes envelopes superseded by a newer one that records them as a gap.
    pub fn drop_superseded(&self, dropped: &[u64], max_bytes: u64) -> Result<(), SpoolError> {
        if dropped.is_empty() {
            return Ok(());
        }
        let total = self.total_bytes()?;
        for (seq, path) in self.pending()? {
            if dropped.contains(&seq) {
                std::fs::remove_file(&path).map_err(err(&path))?;
            }
        }
        self.sync()?;
        if let (Some(first), Some(last)) = (dropped.first(), dropped.last()) {
            warn!(
                first_dropped = first,
                last_dropped = last,
                count = dropped.len(),
                spool_bytes = total,
                spool_max_bytes = max_bytes,
                "spool full: dropped undelivered envelopes {first}..={last} ({} envelopes, {total} \
                 bytes) to stay within spool_max_bytes = {max_bytes}; the next envelope supersedes \
                 them and records the gap",
                dropped.len()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_in_sequence_order_not_write_order() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path().join("spool")).unwrap();
        for seq in [10, 2, 33, 1] {
            s.append(seq, format!("env {seq}").as_bytes()).unwrap();
        }
        std::fs::write(s.dir().join("notes.txt"), "ignored").unwrap();
        let seqs: Vec<u64> = s.pending().unwrap().into_iter().map(|(q, _)| q).collect();
        assert_eq!(seqs, [1, 2, 10, 33]);
        assert_eq!(
            s.pending().unwrap()[0].1.file_name().unwrap(),
            "00000000000000000001.dsse.json"
        );
        assert_eq!(s.read(10).unwrap(), b"env 10");
    }

    #[test]
    fn envelopes_survive_reopening_and_temporary_leftovers_do_not() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool");
        {
            let s = Spool::open(&dir).unwrap();
            s.append(42, b"forty-two").unwrap();
        }
        std::fs::write(dir.join(".00000000000000000043.dsse.json.tmp"), b"half").unwrap();
        let s = Spool::open(&dir).unwrap();
        assert_eq!(s.pending().unwrap().len(), 1);
        assert_eq!(s.read(42).unwrap(), b"forty-two");
        assert!(!dir.join(".00000000000000000043.dsse.json.tmp").exists());
        assert_eq!(s.total_bytes().unwrap(), 9);
    }

    #[test]
    fn remove_deletes_one_and_tolerates_repeats() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        s.append(1, b"a").unwrap();
        s.append(2, b"b").unwrap();
        s.remove(1).unwrap();
        s.remove(1).unwrap();
        let seqs: Vec<u64> = s.pending().unwrap().into_iter().map(|(q, _)| q).collect();
        assert_eq!(seqs, [2]);
        let err = s.read(1).unwrap_err().to_string();
        assert!(err.contains("00000000000000000001.dsse.json"), "{err}");
    }

    #[test]
    fn overflow_drops_everything_pending_and_reports_the_gap() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        for seq in 5..=7 {
            s.append(seq, &[0u8; 100]).unwrap();
        }
        // Fits: nothing dropped.
        assert_eq!(s.make_room(100, 400).unwrap(), Vec::<u64>::new());
        assert_eq!(s.pending().unwrap().len(), 3);
        // Would exceed: all three go, the newest run supersedes them.
        assert_eq!(s.make_room(101, 400).unwrap(), [5, 6, 7]);
        assert!(s.pending().unwrap().is_empty());
        assert_eq!(s.total_bytes().unwrap(), 0);
        // An envelope larger than the whole bound on an empty spool: there
        // is nothing to drop; the caller keeps it anyway.
        assert_eq!(s.make_room(1000, 400).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn planning_room_removes_nothing_until_the_superseding_envelope_is_durable() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        for seq in 5..=7 {
            s.append(seq, &[0u8; 100]).unwrap();
        }
        let planned = s.plan_room(101, 400).unwrap();
        assert_eq!(planned, [5, 6, 7]);
        assert_eq!(
            s.pending().unwrap().len(),
            3,
            "a crash here must leave them in place"
        );
        s.append(8, &[0u8; 101]).unwrap();
        s.drop_superseded(&planned, 400).unwrap();
        let left: Vec<u64> = s.pending().unwrap().into_iter().map(|(q, _)| q).collect();
        assert_eq!(left, [8]);
    }
}
