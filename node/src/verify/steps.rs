//! The step check's IPFS side: from a token's `latentTrace` record, read only what a check of
//! `K` random steps needs, and check it against the Merkle root the node signed (through the
//! metadata CID its attestation names). `genmint verify --steps K` and spot checks with
//! `method = "steps"` both run it; the replay itself is the runtime's
//! ([`genmint_model_runtime::trace::check`]).
//!
//! ```text
//! trace CID ─ cat 0..64+32·(N+1) ─► header + leaves ─► their root = the metadata's merkleRoot?
//!           ─ cat each needed record's range ─► hashes to its leaf?  ─► entries for the replay
//! ```
//!
//! A trace at most [`WHOLE_TRACE_BYTES`] long is read whole and its CID recomputed; a longer
//! one is read by ranges, which the leaves vouch for.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;

use genmint_model_runtime::trace::check::{entries_needed, sample_steps};
use genmint_model_runtime::trace::{LatentTrace, TraceEntry, TraceIndex};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::FetchError;
use crate::ipfs::{Cid, ContentStore};
use crate::provenance::metadata::LatentTraceRecord;

/// Traces up to this size are fetched whole (and their CID checked) rather than by ranges.
pub const WHOLE_TRACE_BYTES: u64 = 512 << 10;
/// The largest trace a check reads whole or indexes (1,000 SD 1.5 steps with state).
pub const MAX_TRACE_BYTES: u64 = 256 << 20;

/// What a step check of a token needs: the steps drawn and the entries they read, each checked
/// against the signed root.
#[derive(Debug)]
pub struct FetchedTrace {
    pub steps: Vec<u32>,
    pub entries: BTreeMap<u32, TraceEntry>,
    /// Bytes read from IPFS.
    pub bytes_read: usize,
}

/// Why a trace could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum TraceProblem {
    /// Kubo did not deliver: may pass, says nothing about the node.
    #[error("fetching the latent trace: {0}")]
    Fetch(#[from] FetchError),
    /// What the node pinned or signed is wrong: a failed check.
    #[error("the latent trace is not what the metadata commits to: {0}")]
    Forged(String),
}

/// `count` steps of `steps`, drawn so the minting node cannot predict them.
pub fn draw_steps(steps: u32, count: u32) -> Vec<u32> {
    // std's `RandomState` is seeded from the operating system's randomness.
    let seed = RandomState::new().hash_one(steps);
    sample_steps(&mut ChaCha20Rng::seed_from_u64(seed), steps, count)
}

/// Reads the entries a check of the `chosen` steps (from [`draw_steps`]) of the request's
/// `steps` needs from the trace `record` names.
pub async fn fetch_for_check(
    store: &impl ContentStore,
    record: &LatentTraceRecord,
    steps: u32,
    chosen: &[u32],
) -> Result<FetchedTrace, TraceProblem> {
    let forged = |reason: String| TraceProblem::Forged(reason);
    if record.steps != steps {
        return Err(forged(format!("it has {} steps, the request {steps}", record.steps)));
    }
    if record.bytes > MAX_TRACE_BYTES {
        return Err(forged(format!(
            "it claims {} bytes, more than the {MAX_TRACE_BYTES} read here",
            record.bytes
        )));
    }
    let cid: Cid = record.cid.parse().map_err(|e: crate::ipfs::CidParseError| FetchError::BadCid {
        cid: record.cid.clone(),
        reason: e.to_string(),
    })?;
    if chosen.iter().any(|&i| i >= steps) {
        return Err(TraceProblem::Fetch(FetchError::BadCid {
            cid: record.cid.clone(),
            reason: format!("asked for a step beyond the request's {steps}"),
        }));
    }
    let needed = entries_needed(steps, chosen);
    let (index, entries, bytes_read) = if record.bytes <= WHOLE_TRACE_BYTES {
        let bytes = super::fetch_checked(store, &record.cid, record.bytes as usize).await?;
        let (index, trace) = LatentTrace::from_bytes(&bytes).map_err(|e| forged(e.to_string()))?;
        let entries = needed.iter().map(|&i| (i, trace.entries[i as usize].clone())).collect();
        (index, entries, bytes.len())
    } else {
        read_ranges(store, &cid, steps, &needed).await?
    };
    if index.root != record.merkle_root {
        return Err(forged(format!("its root is {}, the metadata's {}", index.root, record.merkle_root)));
    }
    if index.steps != steps {
        return Err(forged(format!("its header says {} steps, the request {steps}", index.steps)));
    }
    Ok(FetchedTrace { steps: chosen.to_vec(), entries, bytes_read })
}

/// The index, then each needed record by its range, each record checked against its leaf.
async fn read_ranges(
    store: &impl ContentStore,
    cid: &Cid,
    steps: u32,
    needed: &BTreeSet<u32>,
) -> Result<(TraceIndex, BTreeMap<u32, TraceEntry>, usize), TraceProblem> {
    let forged = |reason: String| TraceProblem::Forged(reason);
    let index_len = genmint_model_runtime::trace::TRACE_HEADER_LEN + 32 * (steps as usize + 1);
    let head = store.cat_range(cid, 0, index_len).await.map_err(FetchError::from)?;
    let index = TraceIndex::parse(&head).map_err(|e| forged(e.to_string()))?;
    let mut bytes_read = head.len();
    let mut entries = BTreeMap::new();
    for &i in needed {
        let range = index.record_range(i);
        let record = store.cat_range(cid, range.start, range.len()).await.map_err(FetchError::from)?;
        bytes_read += record.len();
        entries.insert(i, index.entry(i, &record).map_err(|e| forged(e.to_string()))?);
    }
    Ok((index, entries, bytes_read))
}

#[cfg(test)]
mod tests {
    use genmint_model_runtime::trace::merkle::TraceHash;
    use genmint_model_runtime::trace::{SampleShape, TRACE_FORMAT};

    use super::*;
    use crate::ipfs::MemoryStore;

    fn trace(steps: u32, values: usize) -> LatentTrace {
        let entries = (0..=steps)
            .map(|i| TraceEntry {
                sample: (0..values).map(|v| (i as usize * values + v) as f32).collect(),
                state: vec![],
            })
            .collect();
        LatentTrace {
            shape: SampleShape { channels: 1, height: 1, width: values as u32 },
            carries_state: false,
            entries,
        }
    }

    async fn pinned(store: &MemoryStore, trace: &LatentTrace) -> LatentTraceRecord {
        let bytes = trace.to_bytes().unwrap();
        let size = bytes.len() as u64;
        let cid = store.add_and_pin(bytes).await.unwrap();
        LatentTraceRecord {
            format: TRACE_FORMAT.into(),
            cid: cid.to_string(),
            merkle_root: trace.root().unwrap(),
            steps: trace.steps(),
            bytes: size,
        }
    }

    #[tokio::test]
    async fn small_and_large_traces_give_the_needed_entries() {
        let store = MemoryStore::default();
        // 64 KiB records (an SD 1.5 latent): the second trace is read by ranges.
        for values in [16, 16384] {
            let trace = trace(10, values);
            let record = pinned(&store, &trace).await;
            let fetched = fetch_for_check(&store, &record, 10, &draw_steps(10, 2)).await.unwrap();
            assert_eq!(fetched.steps.len(), 2);
            let keys: BTreeSet<u32> = fetched.entries.keys().copied().collect();
            assert_eq!(keys, entries_needed(10, &fetched.steps));
            for (i, entry) in &fetched.entries {
                assert_eq!(entry, &trace.entries[*i as usize]);
            }
            if record.bytes > WHOLE_TRACE_BYTES {
                // The entries needed (at most six of eleven, whichever steps were drawn), plus the
                // header and leaf table: less than one more record.
                let needed = (keys.len() + 1) * values * 4;
                assert!(fetched.bytes_read < needed, "read {} bytes for {keys:?}", fetched.bytes_read);
                assert!(fetched.bytes_read < record.bytes as usize, "not the whole trace");
            }
        }
    }

    #[tokio::test]
    async fn a_trace_that_is_not_the_signed_one_is_forged() {
        let store = MemoryStore::default();
        let honest = trace(4, 16);
        let mut record = pinned(&store, &honest).await;
        record.merkle_root = TraceHash([7; 32]);
        let err = fetch_for_check(&store, &record, 4, &[1]).await.unwrap_err();
        assert!(matches!(err, TraceProblem::Forged(_)), "{err}");
        let record = pinned(&store, &honest).await;
        assert!(matches!(fetch_for_check(&store, &record, 5, &[1]).await, Err(TraceProblem::Forged(_))));
    }
}
