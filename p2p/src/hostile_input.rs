//! Strategies for property tests of decoders of outside bytes: arbitrary bytes, and valid
//! encodings with bytes replaced, removed or inserted. Used by this crate's tests and, through the
//! `hostile-input` feature, by the node's.

use proptest::prelude::*;

/// `valid` with up to eight edits: a byte replaced, removed or inserted at a position.
pub fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..8).prop_map(move |edits| {
        let mut bytes = valid.clone();
        for (at, byte, kind) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        bytes
    })
}

/// Arbitrary bytes, or one of `valid` mutated.
pub fn hostile(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutations: Vec<_> = valid.into_iter().map(mutated).collect();
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), prop::strategy::Union::new(mutations)]
}
