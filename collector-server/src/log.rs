//! The evidence log as the collector keeps it: an RFC 6962 tree whose
//! leaves are in the store and whose upper levels are in memory.
//!
//! Every 256 leaves make a tile; the root of each complete tile is stored
//! and, above it, every complete subtree is held in memory (64 bytes per
//! 256 leaves: 2.5 MB for ten million). A proof needs at most a few tiles'
//! leaves from the store and the rest from memory. Appending computes only
//! the hashes the new leaves close (no recomputation of the tree).
//!
//! Only the writer task appends ([`Staged`], then [`Log::commit`] or
//! [`Log::abandon`]); requests read proofs concurrently. Another collector
//! on the same database may have appended meanwhile: the store then refuses
//! the batch (it starts at the wrong index) and [`Log::resync`] takes in
//! what the other wrote.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use annexa_evidence::collector_keys::KeyHistory;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::log::LogEntry;
use annexa_evidence::merkle::{self, Hash, MemoryTree, Nodes, ProofError};
use annexa_evidence::note::{Checkpoint, Verifier};

use crate::clock;
use crate::store::{CheckpointRow, LogAppend, Store, StoreError};

/// Leaves per tile (2^8).
pub const TILE_HEIGHT: u32 = 8;
const TILE: u64 = 1 << TILE_HEIGHT;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A proof was asked for sizes the log cannot prove.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The configured origin is not the one the log's checkpoints carry.
    #[error(
        "the evidence log's origin is `{stored}`, the configuration says `{configured}`: a log's origin never changes (set log_origin = \"{stored}\")"
    )]
    Origin {
        /// In the stored checkpoints.
        stored: String,
        /// Configured.
        configured: String,
    },
    /// What is stored does not add up to what the collector signed.
    #[error("the evidence log does not match its last signed checkpoint: {0}")]
    Tampered(String),
    /// The collector's key is not the newest of the log's key history.
    #[error("the collector's key: {0}")]
    Key(String),
}

/// A checkpoint the collector signed: size, root, the signed note and
/// when it was signed, exactly as it is stored.
pub type Signed = CheckpointRow;

#[derive(Debug)]
struct Tree {
    /// Committed leaves.
    size: u64,
    /// Complete subtrees from level 8 up (its "leaves" are tile roots).
    upper: MemoryTree,
    /// Leaf hashes of the incomplete last tile.
    partial: Vec<Hash>,
    /// The newest signed checkpoint (covers `size`).
    latest: Arc<Signed>,
    /// Size of the newest stored checkpoint.
    stored: u64,
}

/// The log: its key (with the origin as key name), the keys it had
/// before, and its tree.
pub struct Log {
    /// Its newest key is `key`'s verifier.
    history: KeyHistory,
    key: Arc<SigningKey>,
    tree: RwLock<Tree>,
    /// Entries other collectors appended that this one took into its tree
    /// but whose hosts it has not reloaded yet ([`Log::take_behind`]).
    behind: std::sync::Mutex<Option<std::ops::Range<u64>>>,
}

/// The log's key history from the stored transitions; `current` must be
/// its newest key (the one `annexa-collector key rotate` brought in).
pub async fn key_history(store: &dyn Store, current: &Verifier) -> Result<KeyHistory, LogError> {
    let notes: Vec<String> = store
        .key_transitions()
        .await?
        .into_iter()
        .map(|t| t.note)
        .collect();
    let history = KeyHistory::follow(current, &notes).map_err(|e| {
        LogError::Key(format!(
            "{e}; collector.key must be the key the last `annexa-collector key rotate` brought in"
        ))
    })?;
    if history.current() != current {
        return Err(LogError::Key(format!(
            "collector.key (key {:08x}) was retired by a later rotation to key {:08x}: restore the \
             newest key, or run `annexa-collector key rotate` again if it was interrupted",
            current.id,
            history.current().id
        )));
    }
    Ok(history)
}

/// Complete-subtree hashes from memory (levels ≥ 8), tiles read for this
/// proof, and the partial tile.
struct Source<'a> {
    upper: &'a MemoryTree,
    tiles: &'a HashMap<u64, Vec<Hash>>,
}

/// The root at `size` of a tree whose complete tiles are `upper` and whose
/// tile `size / TILE` holds `partial` (at least its first `size % TILE`
/// leaves).
fn root_from(upper: &MemoryTree, partial: &[Hash], size: u64) -> Hash {
    let tiles = HashMap::from([(size / TILE, partial.to_vec())]);
    merkle::root(
        &Source {
            upper,
            tiles: &tiles,
        },
        size,
    )
    .unwrap_or(merkle::EMPTY_ROOT)
}

impl Nodes for Source<'_> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        if level >= TILE_HEIGHT {
            return self.upper.node(level - TILE_HEIGHT, index);
        }
        let first = index << level;
        let tile = self.tiles.get(&(first / TILE))?;
        let start = (first % TILE) as usize;
        let leaves = tile.get(start..start + (1usize << level))?;
        Some(subtree(leaves))
    }
}

/// Records which tiles a proof reaches into, answering with placeholders.
struct Recorder<'a> {
    upper: &'a MemoryTree,
    wanted: std::cell::RefCell<Vec<u64>>,
}

impl Nodes for Recorder<'_> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        if level >= TILE_HEIGHT {
            return self.upper.node(level - TILE_HEIGHT, index);
        }
        let tile = (index << level) / TILE;
        let mut w = self.wanted.borrow_mut();
        if !w.contains(&tile) {
            w.push(tile);
        }
        Some([0u8; 32])
    }
}

/// The root of a power-of-two run of leaves.
fn subtree(leaves: &[Hash]) -> Hash {
    let mut t = MemoryTree::new();
    for l in leaves {
        t.push(*l);
    }
    t.root()
}

/// A batch's leaves before they are committed.
#[derive(Debug)]
pub struct Staged {
    /// Index of the batch's first leaf.
    pub first: u64,
    /// Leaves staged.
    count: u64,
    partial: Vec<Hash>,
    /// Tiles this batch closes.
    pub tiles: Vec<(u64, Hash)>,
}

impl Staged {
    /// Adds a leaf; returns its index.
    pub fn push(&mut self, entry: &LogEntry) -> (u64, Hash) {
        let leaf = entry.leaf_hash();
        (self.push_leaf(leaf), leaf)
    }

    /// Adds a leaf by its hash; returns its index.
    fn push_leaf(&mut self, leaf: Hash) -> u64 {
        let index = self.end();
        self.count += 1;
        self.partial.push(leaf);
        if self.partial.len() as u64 == TILE {
            self.tiles.push((index / TILE, subtree(&self.partial)));
            self.partial.clear();
        }
        index
    }

    /// The log's size once the batch commits.
    pub fn end(&self) -> u64 {
        self.first + self.count
    }
}

impl Log {
    /// Loads the log from the store and checks it against the newest stored
    /// checkpoint: a store whose tile roots or last tile's leaves were
    /// rewritten does not start (it would sign checkpoints over the
    /// rewrite). Leaves rewritten inside complete tiles are found by
    /// `annexa verify log`, which recomputes everything.
    pub async fn open(
        store: &dyn Store,
        key: Arc<SigningKey>,
        origin: &str,
    ) -> Result<Log, LogError> {
        let verifier = Verifier::new(origin, key.public())
            .map_err(|e| LogError::Tampered(format!("origin `{origin}`: {e}")))?;
        let history = key_history(store, &verifier).await?;
        let log = Log {
            history,
            key,
            behind: std::sync::Mutex::new(None),
            tree: RwLock::new(Tree {
                size: 0,
                upper: MemoryTree::new(),
                partial: Vec::new(),
                latest: Arc::new(Signed {
                    size: 0,
                    root: merkle::EMPTY_ROOT,
                    note: String::new(),
                    signed_at: String::new(),
                }),
                stored: 0,
            }),
        };
        // Everything the store holds, taken in as another collector's.
        log.resync(store).await?;
        Ok(log)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tree> {
        self.tree.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The log's origin (checkpoint first line and key name).
    pub fn origin(&self) -> &str {
        &self.verifier().name
    }

    /// The verifier key auditors and agents check checkpoints with.
    pub fn verifier(&self) -> &Verifier {
        self.history.current()
    }

    /// Every key the log has had, with the transitions between them.
    pub fn history(&self) -> &KeyHistory {
        &self.history
    }

    /// Committed leaves.
    pub fn size(&self) -> u64 {
        self.read().size
    }

    /// The newest signed checkpoint.
    pub fn latest(&self) -> Arc<Signed> {
        self.read().latest.clone()
    }

    fn sign(&self, size: u64, root: Hash) -> Signed {
        let cp = Checkpoint {
            origin: self.origin().to_string(),
            size,
            root,
        };
        Signed {
            size,
            root,
            // The origin was checked as a key name when the log opened.
            note: cp.sign(&self.key).unwrap_or_default(),
            signed_at: clock::now_rfc3339(),
        }
    }

    /// Starts a batch at the committed size.
    pub fn stage(&self) -> Staged {
        let t = self.read();
        Staged {
            first: t.size,
            count: 0,
            partial: t.partial.clone(),
            tiles: Vec::new(),
        }
    }

    /// Signs the checkpoint the staged batch leads to and returns what the
    /// store must write with it (`persist`: include the checkpoint).
    pub fn seal(&self, staged: &Staged, persist: bool) -> (Arc<Signed>, LogAppend) {
        let mut t = self.write();
        // Tiles go into the upper tree now (nodes above the committed size
        // are never asked for); `abandon` takes them out again.
        for (_, h) in &staged.tiles {
            t.upper.push(*h);
        }
        let size = staged.end();
        let root = root_from(&t.upper, &staged.partial, size);
        drop(t);
        let signed = Arc::new(self.sign(size, root));
        let append = LogAppend {
            tiles: staged.tiles.clone(),
            checkpoint: persist.then(|| (*signed).clone()),
        };
        (signed, append)
    }

    /// The batch `staged` met `others`, leaves another collector appended
    /// at its position (read under the store's write lock, so nothing else
    /// can come between): stages the batch's leaves after them and seals
    /// again. The tiles the others' leaves closed are stored already and
    /// are left out of the append. Call in place of [`Log::abandon`].
    pub fn restage(
        &self,
        staged: &Staged,
        others: &[Hash],
        ours: &[Hash],
        persist: bool,
    ) -> (Staged, Arc<Signed>, LogAppend) {
        self.abandon(staged);
        let mut st = self.stage();
        for h in others {
            st.push_leaf(*h);
        }
        let found = st.end();
        for h in ours {
            st.push_leaf(*h);
        }
        let (signed, mut append) = self.seal(&st, persist);
        append.tiles.retain(|(i, _)| (i + 1) * TILE > found);
        (st, signed, append)
    }

    /// The batch committed: its leaves are the log's.
    pub fn commit(&self, staged: Staged, signed: Arc<Signed>, persisted: bool) {
        let mut t = self.write();
        t.size = staged.end();
        t.partial = staged.partial;
        if persisted {
            t.stored = signed.size;
        }
        t.latest = signed;
    }

    /// The batch failed: forget its tiles.
    pub fn abandon(&self, staged: &Staged) {
        let mut t = self.write();
        let keep = t.size / TILE;
        t.upper.truncate(keep);
        debug_assert_eq!(staged.first, t.size);
    }

    /// Takes in entries another collector appended to the store since this
    /// one last looked (at start: all of them); returns their log indices
    /// (empty if none). Only what is new is read: the tiles beyond those
    /// held and the newest checkpoint. The last tile root this collector
    /// holds must be the one stored (a log only grows), and the newest
    /// stored checkpoint must be this log's, signed by its key, and hold
    /// over the new tree.
    pub async fn resync(&self, store: &dyn Store) -> Result<std::ops::Range<u64>, LogError> {
        // The checkpoint before the size: one read first cannot cover
        // more entries than a size read after, unless entries were removed
        // (another collector may append in between).
        let newest = store.latest_checkpoint().await?;
        let size = store.log_size().await?;
        if let Some(cp) = &newest
            && cp.size > size
        {
            return Err(LogError::Tampered(format!(
                "the checkpoint signs {} entries, the store holds {size}",
                cp.size
            )));
        }
        let (held, held_tiles) = {
            let t = self.read();
            (t.size, t.upper.size())
        };
        // An empty log is still gone through once, at start, so that its
        // first checkpoint is signed.
        if size == held && !self.read().latest.note.is_empty() {
            return Ok(held..held);
        }
        if size < held {
            return Err(LogError::Tampered(format!(
                "the store holds {size} entries, this collector committed {held}"
            )));
        }
        let overlap = held_tiles.saturating_sub(1);
        let tiles = store.log_tiles(overlap).await?;
        if overlap + tiles.len() as u64 != size / TILE {
            return Err(LogError::Tampered(format!(
                "{size} entries need {} tile roots, the store has {}",
                size / TILE,
                overlap + tiles.len() as u64
            )));
        }
        let partial = store.log_leaves(size - size % TILE, size).await?;
        let root = {
            let mut t = self.write();
            if t.size != held {
                // The writer is the only one to move the tree; this runs
                // on it, so nothing can have moved.
                return Err(LogError::Tampered("the tree moved during a resync".into()));
            }
            for (k, h) in tiles.iter().enumerate() {
                let i = overlap + k as u64;
                if i < held_tiles {
                    if t.upper.level(0).get(i as usize) != Some(h) {
                        return Err(LogError::Tampered(format!(
                            "tile {i} was rewritten in the store"
                        )));
                    }
                } else {
                    t.upper.push(*h);
                }
            }
            t.size = size;
            t.partial = partial;
            t.stored = newest.as_ref().map_or(t.stored, |c| c.size.max(t.stored));
            root_from(&t.upper, &t.partial, size)
        };
        if let Some(last) = &newest {
            self.check_stored(store, last).await?;
        }
        let signed = self.sign(size, root);
        self.write().latest = Arc::new(signed);
        Ok(held..size)
    }

    /// A stored checkpoint must carry this log's origin, be signed by its
    /// key, say in its row what its note signs, and hold over the entries.
    async fn check_stored(&self, store: &dyn Store, last: &CheckpointRow) -> Result<(), LogError> {
        let origin = self.origin();
        let first_line = last.note.split('\n').next().unwrap_or_default();
        if first_line != origin {
            return Err(LogError::Origin {
                stored: first_line.to_string(),
                configured: origin.to_string(),
            });
        }
        let cp = self.history.open_checkpoint(&last.note).map_err(|e| {
            LogError::Tampered(format!("the checkpoint at size {}: {e}", last.size))
        })?;
        if cp.size != last.size || cp.root != last.root {
            return Err(LogError::Tampered(format!(
                "the checkpoint row at size {} does not hold what its note signs",
                last.size
            )));
        }
        let root = match self.root_in_memory(cp.size) {
            Some(root) => root,
            None => self.root_at(store, cp.size).await?,
        };
        if root != cp.root {
            return Err(LogError::Tampered(format!(
                "the entries up to size {} give root {}, the checkpoint signed {}",
                cp.size,
                annexa_evidence::encoding::hex(&root),
                annexa_evidence::encoding::hex(&cp.root)
            )));
        }
        Ok(())
    }

    /// The root at `size` from what the tree holds in memory: the tile
    /// roots and the last tile's leaves. `None` if it needs leaves of an
    /// earlier, complete tile (read from the store by [`Log::root_at`]).
    fn root_in_memory(&self, size: u64) -> Option<Hash> {
        let t = self.read();
        let covered = size <= t.size && (size / TILE == t.size / TILE || size.is_multiple_of(TILE));
        covered.then(|| root_from(&t.upper, &t.partial, size))
    }

    /// Notes entries other collectors appended, taken into the tree, whose
    /// hosts are still to be reloaded.
    pub fn note_behind(&self, range: std::ops::Range<u64>) {
        if range.is_empty() {
            return;
        }
        let mut b = self.behind.lock().unwrap_or_else(|p| p.into_inner());
        *b = Some(match b.take() {
            Some(r) => r.start.min(range.start)..r.end.max(range.end),
            None => range,
        });
    }

    /// The entries noted by [`Log::note_behind`] since the last call (one
    /// range covering them all, with whatever of this collector's own lies
    /// between).
    pub fn take_behind(&self) -> Option<std::ops::Range<u64>> {
        self.behind.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The newest checkpoint if it is not stored yet (the periodic tick
    /// stores it).
    pub fn unstored(&self) -> Option<Arc<Signed>> {
        let t = self.read();
        (t.latest.size > t.stored).then(|| t.latest.clone())
    }

    /// Notes that a checkpoint was stored.
    pub fn stored(&self, size: u64) {
        let mut t = self.write();
        t.stored = t.stored.max(size);
    }

    /// Runs `proof` over the tree at `size`, reading the tiles it reaches
    /// into from the store.
    async fn with_nodes<T>(
        &self,
        store: &dyn Store,
        size: u64,
        proof: impl Fn(&dyn Nodes) -> Result<T, ProofError>,
    ) -> Result<T, LogError> {
        let wanted = {
            let t = self.read();
            if size > t.size {
                return Err(ProofError::Range(format!(
                    "tree size {size} is beyond the log's {}",
                    t.size
                ))
                .into());
            }
            let rec = Recorder {
                upper: &t.upper,
                wanted: Default::default(),
            };
            proof(&rec)?;
            rec.wanted.into_inner()
        };
        let mut tiles = HashMap::new();
        for tile in wanted {
            let start = tile * TILE;
            let end = (start + TILE).min(size);
            tiles.insert(tile, store.log_leaves(start, end).await?);
        }
        let t = self.read();
        Ok(proof(&Source {
            upper: &t.upper,
            tiles: &tiles,
        })?)
    }

    /// The root at a committed size.
    pub async fn root_at(&self, store: &dyn Store, size: u64) -> Result<Hash, LogError> {
        self.with_nodes(store, size, |n| merkle::root(n, size))
            .await
    }

    /// Leaf `index`'s hash and its inclusion proof in the tree of `size`
    /// (the leaf comes from the tile the proof reads anyway).
    pub async fn inclusion(
        &self,
        store: &dyn Store,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>), LogError> {
        self.with_nodes(store, size, |n| {
            let proof = merkle::inclusion_proof(n, index, size)?;
            let leaf = n
                .node(0, index)
                .ok_or(ProofError::MissingNode { level: 0, index })?;
            Ok((leaf, proof))
        })
        .await
    }

    /// Inclusion proofs of many leaves in the tree of `size`, reading each
    /// tile they reach into once.
    pub async fn inclusions(
        &self,
        store: &dyn Store,
        indices: &[u64],
        size: u64,
    ) -> Result<Vec<Vec<Hash>>, LogError> {
        self.with_nodes(store, size, |n| {
            indices
                .iter()
                .map(|&i| merkle::inclusion_proof(n, i, size))
                .collect()
        })
        .await
    }

    /// The consistency proof between two committed sizes.
    pub async fn consistency(
        &self,
        store: &dyn Store,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, LogError> {
        self.with_nodes(store, to, |n| merkle::consistency_proof(n, from, to))
            .await
    }
}
