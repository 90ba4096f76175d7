//! The binary Merkle tree over a latent trace's records (format `genmint-trace-merkle-v1`): the
//! root a node publishes with its attestation, and the inclusion proofs that let anyone check one
//! record against it.
//!
//! ```text
//! leaf i   = sha256("genmint-trace-leaf-v1" ‖ 0x00 ‖ i u32 LE ‖ record bytes)
//! node     = sha256("genmint-trace-node-v1" ‖ 0x00 ‖ left ‖ right)
//! root(n)  = leaf 0                                 for n = 1
//!          = node(root(leaves[..k]), root(leaves[k..]))  for n > 1, k = the largest power of two < n
//! ```
//!
//! The split is RFC 9162's (Certificate Transparency v2), with genmint's own domain tags: there
//! is no padding, and an odd node is never paired with a copy of itself, so no two leaf lists of
//! different lengths share a root (the duplicated-last-leaf ambiguity of Bitcoin's tree cannot
//! happen). The leaf's index is hashed in, so records cannot be reordered either. An empty tree
//! has no root.

use sha2::{Digest, Sha256};

const LEAF_TAG: &[u8] = b"genmint-trace-leaf-v1\0";
const NODE_TAG: &[u8] = b"genmint-trace-node-v1\0";

/// A 32-byte hash in the tree: a leaf's, an inner node's or the root. Written as `0x` and 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceHash(pub [u8; 32]);

/// The root of a trace's tree: what a token's metadata records and the checker trusts.
pub type TraceRoot = TraceHash;

crate::hex_digest::hex_digest!(TraceHash, "trace root");

/// The hash of record `index` (its bytes as the trace file holds them).
pub fn leaf_hash(index: u32, record: &[u8]) -> TraceHash {
    let mut hasher = Sha256::new();
    hasher.update(LEAF_TAG);
    hasher.update(index.to_le_bytes());
    hasher.update(record);
    TraceHash(hasher.finalize().into())
}

fn node_hash(left: &TraceHash, right: &TraceHash) -> TraceHash {
    let mut hasher = Sha256::new();
    hasher.update(NODE_TAG);
    hasher.update(left.0);
    hasher.update(right.0);
    TraceHash(hasher.finalize().into())
}

/// The largest power of two below `n` (for `n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root over `leaves`, in order; `None` for no leaves.
pub fn root(leaves: &[TraceHash]) -> Option<TraceRoot> {
    match leaves {
        [] => None,
        [only] => Some(*only),
        _ => {
            let k = split(leaves.len());
            Some(node_hash(&root(&leaves[..k])?, &root(&leaves[k..])?))
        }
    }
}

/// The inclusion proof of leaf `index`: the sibling hashes from the leaf up to the root (RFC
/// 9162's audit path). `None` when `index` is not a leaf.
pub fn proof(leaves: &[TraceHash], index: usize) -> Option<Vec<TraceHash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut low, mut high, mut at) = (0, leaves.len(), index);
    // Walk down, remembering the sibling subtree's root at each split; the path runs upward.
    while high - low > 1 {
        let k = split(high - low);
        if at < k {
            path.push(root(&leaves[low + k..high])?);
            high = low + k;
        } else {
            path.push(root(&leaves[low..low + k])?);
            low += k;
            at -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Whether `proof` shows that `leaf` is leaf `index` of a tree of `count` leaves with this `root`
/// (RFC 9162, section 2.1.3.2). A proof of the wrong length, for an index outside the tree, or
/// with any hash changed fails. The proof does not bind `count`: the checker knows it (the
/// request's steps plus one).
pub fn verify_proof(
    root: &TraceRoot,
    count: usize,
    index: usize,
    leaf: &TraceHash,
    proof: &[TraceHash],
) -> bool {
    if index >= count {
        return false;
    }
    let (mut f_n, mut s_n) = (index, count - 1);
    let mut hash = *leaf;
    for sibling in proof {
        if s_n == 0 {
            return false;
        }
        if f_n % 2 == 1 || f_n == s_n {
            hash = node_hash(sibling, &hash);
            // A right child at the end of an uneven level climbs until it is a right child.
            if f_n % 2 == 0 {
                while f_n % 2 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && hash == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u32) -> Vec<TraceHash> {
        (0..n).map(|i| leaf_hash(i, format!("record {i}").as_bytes())).collect()
    }

    #[test]
    fn small_trees_have_the_documented_shape() {
        let l = leaves(5);
        assert_eq!(root(&[]), None);
        assert_eq!(root(&l[..1]), Some(l[0]));
        assert_eq!(root(&l[..2]), Some(node_hash(&l[0], &l[1])));
        // Three leaves: the first two paired, the third promoted (not paired with itself).
        assert_eq!(root(&l[..3]), Some(node_hash(&node_hash(&l[0], &l[1]), &l[2])));
        let four = node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3]));
        assert_eq!(root(&l[..4]), Some(four));
        assert_eq!(root(&l), Some(node_hash(&four, &l[4])));
        // Duplicating the last leaf changes the root.
        let mut doubled = l[..3].to_vec();
        doubled.push(l[2]);
        assert_ne!(root(&doubled), root(&l[..3]));
    }

    #[test]
    fn the_leaf_hash_is_pinned_and_binds_the_index() {
        assert_eq!(
            leaf_hash(0, b"").to_string(),
            format!("0x{}", hex::encode(Sha256::digest(b"genmint-trace-leaf-v1\0\0\0\0\0")))
        );
        assert_ne!(leaf_hash(0, b"x"), leaf_hash(1, b"x"));
    }

    #[test]
    fn every_proof_of_every_tree_size_verifies() {
        for n in 1..=33u32 {
            let l = leaves(n);
            let r = root(&l).unwrap();
            for i in 0..n as usize {
                let p = proof(&l, i).unwrap();
                assert!(verify_proof(&r, l.len(), i, &l[i], &p), "n {n} leaf {i}");
            }
            assert_eq!(proof(&l, n as usize), None);
        }
    }

    #[test]
    fn tampered_proofs_fail() {
        let l = leaves(11);
        let r = root(&l).unwrap();
        for i in 0..l.len() {
            let p = proof(&l, i).unwrap();
            // Another leaf, another index, a changed or missing or extra sibling. (The size is
            // not bound by a proof, as in RFC 9162: it is the request's step count plus one.)
            assert!(!verify_proof(&r, l.len(), i, &leaf_hash(i as u32, b"forged"), &p));
            assert!(!verify_proof(&r, l.len(), (i + 1) % l.len(), &l[i], &p));
            assert!(!verify_proof(&r, l.len(), l.len(), &l[i], &p));
            for s in 0..p.len() {
                let mut bad = p.clone();
                bad[s].0[0] ^= 1;
                assert!(!verify_proof(&r, l.len(), i, &l[i], &bad), "leaf {i} sibling {s}");
            }
            assert!(!verify_proof(&r, l.len(), i, &l[i], &p[..p.len() - 1]));
            let mut longer = p.clone();
            longer.push(l[0]);
            assert!(!verify_proof(&r, l.len(), i, &l[i], &longer));
            let mut other_root = r;
            other_root.0[31] ^= 1;
            assert!(!verify_proof(&other_root, l.len(), i, &l[i], &p));
        }
    }

    #[test]
    fn roots_read_back_from_their_text() {
        let r = root(&leaves(3)).unwrap();
        assert_eq!(r.to_string().parse::<TraceRoot>().unwrap(), r);
        assert_eq!(serde_json::from_value::<TraceRoot>(serde_json::to_value(r).unwrap()).unwrap(), r);
        assert!("0x12".parse::<TraceRoot>().is_err());
    }
}
