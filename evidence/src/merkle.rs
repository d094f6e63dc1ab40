//! RFC 6962 / RFC 9162 Merkle trees: hashing, proofs and their checks.
//!
//! Leaf hash = SHA-256(0x00 ‖ entry), node hash = SHA-256(0x01 ‖ left ‖
//! right), the empty tree's root = SHA-256(""). Proofs are produced from
//! any source of complete-subtree hashes ([`Nodes`]), so that the collector
//! can keep the upper levels in memory and read the lower ones from its
//! store, and checked with the RFC 9162 algorithms (in the bit-twiddling
//! form of transparency-dev/merkle, whose vectors the tests run).

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of a leaf entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x00]);
    c.update(entry);
    to_hash(c)
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x01]);
    c.update(left);
    c.update(right);
    to_hash(c)
}

fn to_hash(c: Context) -> Hash {
    let d = c.finish();
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// Why a proof cannot be produced or does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The request names sizes or indexes that make no proof.
    #[error("{0}")]
    Range(String),
    /// The proof has the wrong number of hashes.
    #[error("the proof has {got} hashes, {want} expected")]
    Length {
        /// Hashes given.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The proof leads to a different root.
    #[error("the proof leads to root {got}, not {want}")]
    Mismatch {
        /// Hex root computed.
        got: String,
        /// Hex root expected.
        want: String,
    },
    /// The source lacks a node the proof needs.
    #[error("no hash for the subtree at level {level}, index {index}")]
    MissingNode {
        /// Level (0 = leaves).
        level: u32,
        /// Index within the level.
        index: u64,
    },
}

/// A source of complete-subtree hashes: `node(level, index)` is the root
/// of leaves `[index << level, (index + 1) << level)`.
pub trait Nodes {
    /// The hash, if this source holds it.
    fn node(&self, level: u32, index: u64) -> Option<Hash>;
}

/// The RFC 6962 MTH of leaves `[start, end)` — a range the tree's own
/// recursion produces (its start a multiple of the power of two at or above
/// its length), built from complete subtrees.
pub fn range_hash(nodes: &dyn Nodes, start: u64, end: u64) -> Result<Hash, ProofError> {
    let len = end - start;
    if len == 0 {
        return Ok(EMPTY_ROOT);
    }
    if len.is_power_of_two() {
        let level = len.trailing_zeros();
        let index = start >> level;
        return nodes
            .node(level, index)
            .ok_or(ProofError::MissingNode { level, index });
    }
    let k = split(len);
    Ok(node_hash(
        &range_hash(nodes, start, start + k)?,
        &range_hash(nodes, start + k, end)?,
    ))
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the first `size` leaves.
pub fn root(nodes: &dyn Nodes, size: u64) -> Result<Hash, ProofError> {
    range_hash(nodes, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1), leaf-side hash first.
pub fn inclusion_proof(nodes: &dyn Nodes, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf index {index} is not below tree size {size}"
        )));
    }
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[start:end]) with the hashes pushed leaf-side first.
fn path(
    nodes: &dyn Nodes,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, start + k, out)?;
        out.push(range_hash(nodes, start + k, end)?);
    } else {
        path(nodes, m - k, start + k, end, out)?;
        out.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof between tree sizes `from` and `to`
/// (RFC 9162 §2.1.4.1). Empty when `from` equals `to`; there is none from
/// the empty tree.
pub fn consistency_proof(nodes: &dyn Nodes, from: u64, to: u64) -> Result<Vec<Hash>, ProofError> {
    if from > to {
        return Err(ProofError::Range(format!(
            "size {from} is larger than size {to}"
        )));
    }
    if from == 0 {
        return Err(ProofError::Range(
            "no consistency proof starts from the empty tree".into(),
        ));
    }
    let mut proof = Vec::new();
    if from == to {
        return Ok(proof);
    }
    subproof(nodes, from, 0, to, true, &mut proof)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start:end], b).
fn subproof(
    nodes: &dyn Nodes,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, start + k, whole, out)?;
        out.push(range_hash(nodes, start + k, end)?);
    } else {
        subproof(nodes, m - k, start + k, end, false, out)?;
        out.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

fn mismatch(got: &Hash, want: &Hash) -> ProofError {
    ProofError::Mismatch {
        got: crate::encoding::hex(got),
        want: crate::encoding::hex(want),
    }
}

/// Sizes of the inner and border parts of an inclusion proof.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// The root an inclusion proof leads to.
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf index {index} is not below tree size {size}"
        )));
    }
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::Length {
            got: proof.len(),
            want: inner + border,
        });
    }
    let h = chain_inner(*leaf, &proof[..inner], index);
    Ok(chain_border_right(h, &proof[inner..]))
}

/// Checks that leaf `index` with hash `leaf` is in the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let got = root_from_inclusion(leaf, index, size, proof)?;
    if &got != root {
        return Err(mismatch(&got, root));
    }
    Ok(())
}

/// Checks that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::Range(format!(
            "size {size2} is smaller than size {size1}: a log never shrinks"
        )));
    }
    if size1 == 0 {
        // Every tree extends the empty one: such a "proof" proves nothing,
        // and accepting one would let a caller skip the check.
        return Err(ProofError::Range(
            "no consistency proof starts from the empty tree".into(),
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            });
        }
        if root1 != root2 {
            return Err(mismatch(root2, root1));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::Length { got: 0, want: 1 });
    }
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift;
    let (seed, start) = if size1 == 1 << shift {
        (*root1, 0)
    } else {
        (proof[0], 1)
    };
    if proof.len() != start + inner + border {
        return Err(ProofError::Length {
            got: proof.len(),
            want: start + inner + border,
        });
    }
    let proof = &proof[start..];
    let mask = (size1 - 1) >> shift;
    let h1 = chain_border_right(
        chain_inner_right(seed, &proof[..inner], mask),
        &proof[inner..],
    );
    if &h1 != root1 {
        return Err(mismatch(&h1, root1));
    }
    let h2 = chain_border_right(chain_inner(seed, &proof[..inner], mask), &proof[inner..]);
    if &h2 != root2 {
        return Err(mismatch(&h2, root2));
    }
    Ok(())
}

/// A tree held whole in memory: every complete subtree's hash, level by
/// level. Appending is O(log n); the verifier and the collector's upper
/// levels use it.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash; completes the subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let n = self.levels[level].len();
            if n % 2 == 1 {
                break;
            }
            h = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            level += 1;
        }
    }

    /// Cuts the tree back to its first `size` leaves.
    pub fn truncate(&mut self, size: u64) {
        for (level, hashes) in self.levels.iter_mut().enumerate() {
            hashes.truncate((size >> level) as usize);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        root(self, self.size()).unwrap_or(EMPTY_ROOT)
    }

    /// The root at an earlier size.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::Range(format!(
                "size {size} is beyond the tree's {}",
                self.size()
            )));
        }
        root(self, size)
    }

    /// Hashes at one level (0 = leaves).
    pub fn level(&self, level: u32) -> &[Hash] {
        self.levels
            .get(level as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl Nodes for MemoryTree {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.levels
            .get(level as usize)?
            .get(index as usize)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
            }
        }
    }

    fn tree(n: u64) -> (MemoryTree, Vec<Hash>) {
        let mut t = MemoryTree::new();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for l in &leaves {
            t.push(*l);
        }
        (t, leaves)
    }

    proptest! {
        #[test]
        fn incremental_roots_match_the_recursive_definition(n in 0u64..300, m in 0u64..300) {
            let (t, leaves) = tree(n);
            prop_assert_eq!(t.root(), naive(&leaves));
            let m = m.min(n);
            prop_assert_eq!(t.root_at(m).unwrap(), naive(&leaves[..m as usize]));
            let mut cut = t.clone();
            cut.truncate(m);
            prop_assert_eq!(cut.root(), naive(&leaves[..m as usize]));
        }

        #[test]
        fn inclusion_proofs_verify_and_tampering_fails(n in 1u64..600, i in 0u64..600, bit in 0usize..256) {
            let (t, leaves) = tree(n);
            let i = i % n;
            let proof = inclusion_proof(&t, i, n).unwrap();
            let r = t.root();
            prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &proof, &r).is_ok());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = bit / 8 % bad.len();
                bad[j][bit % 32] ^= 1;
                prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &bad, &r).is_err());
            }
            if n > 1 {
                let other = (i + 1) % n;
                prop_assert!(verify_inclusion(&leaves[i as usize], other, n, &proof, &r).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_tampering_fails(n in 1u64..600, m in 0u64..600, bit in 0usize..256) {
            let (t, _) = tree(n);
            let m = 1 + m % n;
            let proof = consistency_proof(&t, m, n).unwrap();
            let (r1, r2) = (t.root_at(m).unwrap(), t.root());
            prop_assert!(verify_consistency(m, n, &proof, &r1, &r2).is_ok());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = bit / 8 % bad.len();
                bad[j][bit % 32] ^= 1;
                prop_assert!(verify_consistency(m, n, &bad, &r1, &r2).is_err());
            }
            if m < n {
                let mut other = r1;
                other[0] ^= 1;
                prop_assert!(verify_consistency(m, n, &proof, &other, &r2).is_err());
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let d = ring::digest::digest(&SHA256, b"");
        assert_eq!(&EMPTY_ROOT[..], d.as_ref());
        assert_eq!(MemoryTree::new().root(), EMPTY_ROOT);
    }
}
