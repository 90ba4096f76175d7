//! Latent traces: what a generation's denoising loop went through, committed by a Merkle root,
//! so a checker can re-run a few steps instead of the whole generation (see [`check`]).
//!
//! ```text
//! seed ─► entry 0 (the initial sample) ─ step 0 ─► entry 1 ─ … ─ step N−1 ─► entry N ─► decode ─► pixels
//! each entry: the sample (f32 LE) ‖ the scheduler state step i needs (DPM-Solver++ 2M: x̂₀ of step i−1)
//! leaf i = sha256(tag ‖ i ‖ entry i's record)  ─►  Merkle root (merkle)  ─►  token metadata
//! ```
//!
//! Only multistep schedulers carry state (`dpmpp_2m`, `dpmpp_2m_karras`: the previous step's
//! data prediction, all zeros in entry 0, where nothing came before); DDIM, Euler, ancestral
//! Euler and LCM carry none (their step noise is drawn again from the seed). So step `i` can be
//! replayed from entry `i` alone, and its result compared with entry `i + 1`.
//!
//! # File format `genmint-latent-trace-v1`
//!
//! All integers little-endian; the file is `64 + 32·(N+1) + (N+1)·record_len` bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `gmtrace\0` |
//! | 8 | 4 | version, 1 |
//! | 12 | 4 | steps `N` (the file has `N + 1` entries) |
//! | 16 | 12 | sample shape: channels, height, width (u32 each) |
//! | 28 | 4 | flags: bit 0 set when each record carries scheduler state |
//! | 32 | 32 | Merkle root over the records |
//! | 64 | 32·(N+1) | leaf hashes, entry 0 first |
//! | 64 + 32·(N+1) | (N+1)·record_len | records: the sample's `C·H·W` f32 values, then as many state values when flag 0 is set |
//!
//! A checker reads the header and the leaf table (1.4 KiB for 10 steps), checks that the leaves
//! give the root, and then reads only the records it replays (`record_range`): each must hash to
//! its leaf. For the default model a record is 12 KiB (24 KiB with state); for SD 1.5 at 512²
//! 64 KiB (128 KiB).

pub mod check;
pub mod merkle;

use merkle::{TraceHash, TraceRoot, leaf_hash};

use crate::RuntimeError;

/// The file's first eight bytes.
pub const TRACE_MAGIC: &[u8; 8] = b"gmtrace\0";
/// The format version the file's header carries.
pub const TRACE_VERSION: u32 = 1;
/// The format's name, for documentation and metadata.
pub const TRACE_FORMAT: &str = "genmint-latent-trace-v1";
/// Bytes before the leaf table.
pub const TRACE_HEADER_LEN: usize = 64;
/// A trace of more steps than this is refused when read (a bound on what a checker allocates).
pub const MAX_TRACE_STEPS: u32 = 1000;

/// The denoised sample's shape, `[1, channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleShape {
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

impl SampleShape {
    /// Values in one sample.
    pub fn values(&self) -> usize {
        self.channels as usize * self.height as usize * self.width as usize
    }
}

/// One point of the denoising loop: the sample and the scheduler's state going into the next
/// step (empty for schedulers that carry none).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEntry {
    pub sample: Vec<f32>,
    pub state: Vec<f32>,
}

impl TraceEntry {
    /// The record's bytes: the sample's values, then the state's, as f32 LE.
    pub fn record(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4 * (self.sample.len() + self.state.len()));
        for value in self.sample.iter().chain(&self.state) {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    fn from_record(bytes: &[u8], sample_values: usize) -> Self {
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        let (sample, state) = values.split_at(sample_values.min(values.len()));
        Self { sample: sample.to_vec(), state: state.to_vec() }
    }

    /// Whether both entries hold the same bits (so `-0.0` and `0.0` differ, and a NaN equals
    /// itself).
    pub fn bit_identical(&self, other: &TraceEntry) -> bool {
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        bits(&self.sample) == bits(&other.sample) && bits(&self.state) == bits(&other.state)
    }

    /// `‖self − expected‖₂ / ‖expected‖₂` over sample and state together (infinite when the
    /// lengths differ or a value is not finite; the plain norm when `expected` is all zeros).
    pub fn relative_rms(&self, expected: &TraceEntry) -> f64 {
        if self.sample.len() != expected.sample.len() || self.state.len() != expected.state.len() {
            return f64::INFINITY;
        }
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        let ours = self.sample.iter().chain(&self.state);
        for (a, b) in ours.zip(expected.sample.iter().chain(&expected.state)) {
            let (a, b) = (f64::from(*a), f64::from(*b));
            diff += (a - b) * (a - b);
            norm += b * b;
        }
        let value = if norm > 0.0 { (diff / norm).sqrt() } else { diff.sqrt() };
        if value.is_finite() { value } else { f64::INFINITY }
    }
}

/// A trace's header and leaf table: everything a checker needs before it reads any record.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceIndex {
    pub steps: u32,
    pub shape: SampleShape,
    /// Whether each record carries scheduler state beside the sample.
    pub carries_state: bool,
    pub root: TraceRoot,
    pub leaves: Vec<TraceHash>,
}

impl TraceIndex {
    /// Bytes of one record.
    pub fn record_len(&self) -> usize {
        4 * self.shape.values() * if self.carries_state { 2 } else { 1 }
    }

    /// Bytes of the header and the leaf table together: where the records start.
    pub fn records_offset(&self) -> usize {
        TRACE_HEADER_LEN + 32 * (self.steps as usize + 1)
    }

    /// The byte range of entry `index`'s record in the file.
    pub fn record_range(&self, index: u32) -> std::ops::Range<usize> {
        let start = self.records_offset() + index as usize * self.record_len();
        start..start + self.record_len()
    }

    /// The whole file's length.
    pub fn file_len(&self) -> usize {
        self.records_offset() + (self.steps as usize + 1) * self.record_len()
    }

    /// How many bytes of the file's start [`Self::parse`] needs, from the first 16 bytes.
    pub fn index_len(start: &[u8]) -> Result<usize, RuntimeError> {
        let steps = header_steps(start)?;
        Ok(TRACE_HEADER_LEN + 32 * (steps as usize + 1))
    }

    /// Reads the header and leaf table from the file's start (at least [`Self::index_len`]
    /// bytes), and checks that the leaves give the header's root.
    pub fn parse(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let steps = header_steps(bytes)?;
        let needed = TRACE_HEADER_LEN + 32 * (steps as usize + 1);
        if bytes.len() < needed {
            return Err(malformed(format!(
                "the header and leaf table need {needed} bytes, not {}",
                bytes.len()
            )));
        }
        let word = |offset: usize| {
            u32::from_le_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
        };
        let shape = SampleShape { channels: word(16), height: word(20), width: word(24) };
        if shape.values() == 0 || shape.values() > 1 << 24 {
            return Err(malformed(format!("sample shape {shape:?} is out of bounds")));
        }
        let flags = word(28);
        if flags & !1 != 0 {
            return Err(malformed(format!("unknown flags {flags:#x}")));
        }
        let hash = |offset: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&bytes[offset..offset + 32]);
            TraceHash(h)
        };
        let root = hash(32);
        let leaves: Vec<TraceHash> = (0..=steps as usize).map(|i| hash(TRACE_HEADER_LEN + 32 * i)).collect();
        if merkle::root(&leaves) != Some(root) {
            return Err(malformed("the leaf table does not give the header's root".to_string()));
        }
        Ok(Self { steps, shape, carries_state: flags & 1 == 1, root, leaves })
    }

    /// Entry `index` from its record's bytes, which must hash to its leaf.
    pub fn entry(&self, index: u32, record: &[u8]) -> Result<TraceEntry, RuntimeError> {
        let Some(leaf) = self.leaves.get(index as usize) else {
            return Err(malformed(format!("entry {index} is beyond the trace's {} steps", self.steps)));
        };
        if record.len() != self.record_len() {
            return Err(malformed(format!(
                "entry {index}'s record has {} bytes, not {}",
                record.len(),
                self.record_len()
            )));
        }
        if leaf_hash(index, record) != *leaf {
            return Err(malformed(format!("entry {index}'s record does not hash to its leaf")));
        }
        Ok(TraceEntry::from_record(record, self.shape.values()))
    }

    /// The inclusion proof of entry `index` against [`Self::root`].
    pub fn proof(&self, index: u32) -> Option<Vec<TraceHash>> {
        merkle::proof(&self.leaves, index as usize)
    }
}

fn header_steps(bytes: &[u8]) -> Result<u32, RuntimeError> {
    if bytes.len() < 16 || &bytes[..8] != TRACE_MAGIC {
        return Err(malformed("not a genmint latent trace (no gmtrace magic)".to_string()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != TRACE_VERSION {
        return Err(malformed(format!("trace version {version}, this build reads {TRACE_VERSION}")));
    }
    let steps = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if steps == 0 || steps > MAX_TRACE_STEPS {
        return Err(malformed(format!("{steps} steps is outside 1..={MAX_TRACE_STEPS}")));
    }
    Ok(steps)
}

fn malformed(reason: String) -> RuntimeError {
    RuntimeError::MalformedTrace(reason)
}

/// A whole trace, as a generation records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentTrace {
    pub shape: SampleShape,
    pub carries_state: bool,
    /// `steps + 1` entries, the initial sample first.
    pub entries: Vec<TraceEntry>,
}

impl LatentTrace {
    pub fn steps(&self) -> u32 {
        self.entries.len().saturating_sub(1) as u32
    }

    /// The leaf hashes, entry 0 first.
    pub fn leaves(&self) -> Vec<TraceHash> {
        self.entries.iter().enumerate().map(|(i, entry)| leaf_hash(i as u32, &entry.record())).collect()
    }

    /// The Merkle root over the entries (`None` for a trace without entries).
    pub fn root(&self) -> Option<TraceRoot> {
        merkle::root(&self.leaves())
    }

    /// The file, in `genmint-latent-trace-v1`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RuntimeError> {
        let leaves = self.leaves();
        let root =
            merkle::root(&leaves).ok_or_else(|| malformed("a trace has at least one entry".to_string()))?;
        let mut bytes = Vec::with_capacity(TRACE_HEADER_LEN + 32 * leaves.len());
        bytes.extend_from_slice(TRACE_MAGIC);
        for word in [TRACE_VERSION, self.steps(), self.shape.channels, self.shape.height, self.shape.width] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&u32::from(self.carries_state).to_le_bytes());
        bytes.extend_from_slice(&root.0);
        for leaf in &leaves {
            bytes.extend_from_slice(&leaf.0);
        }
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.record());
        }
        Ok(bytes)
    }

    /// Reads a whole file, checking every record against its leaf.
    pub fn from_bytes(bytes: &[u8]) -> Result<(TraceIndex, Self), RuntimeError> {
        let index = TraceIndex::parse(bytes)?;
        if bytes.len() != index.file_len() {
            return Err(malformed(format!(
                "the trace has {} bytes, its header says {}",
                bytes.len(),
                index.file_len()
            )));
        }
        let entries = (0..=index.steps)
            .map(|i| index.entry(i, &bytes[index.record_range(i)]))
            .collect::<Result<Vec<_>, _>>()?;
        let trace = Self { shape: index.shape, carries_state: index.carries_state, entries };
        Ok((index, trace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(steps: u32, carries_state: bool) -> LatentTrace {
        let shape = SampleShape { channels: 3, height: 2, width: 2 };
        let entries = (0..=steps)
            .map(|i| TraceEntry {
                sample: (0..12).map(|v| (i * 100 + v) as f32 * 0.5).collect(),
                state: if carries_state { (0..12).map(|v| -(v as f32)).collect() } else { Vec::new() },
            })
            .collect();
        LatentTrace { shape, carries_state, entries }
    }

    #[test]
    fn a_trace_file_round_trips_and_records_are_where_the_index_says() {
        for carries_state in [false, true] {
            let original = trace(10, carries_state);
            let bytes = original.to_bytes().unwrap();
            let (index, back) = LatentTrace::from_bytes(&bytes).unwrap();
            assert_eq!(back, original);
            assert_eq!(index.root, original.root().unwrap());
            assert_eq!(bytes.len(), index.file_len());
            assert_eq!(TraceIndex::index_len(&bytes[..16]).unwrap(), index.records_offset());
            assert_eq!(TraceIndex::parse(&bytes[..index.records_offset()]).unwrap(), index);
            for i in 0..=10 {
                let entry = index.entry(i, &bytes[index.record_range(i)]).unwrap();
                assert_eq!(entry, original.entries[i as usize]);
                let proof = index.proof(i).unwrap();
                let leaf = leaf_hash(i, &entry.record());
                assert!(merkle::verify_proof(&index.root, 11, i as usize, &leaf, &proof));
            }
        }
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let bytes = trace(4, true).to_bytes().unwrap();
        let (index, _) = LatentTrace::from_bytes(&bytes).unwrap();
        // A record byte: its leaf no longer matches.
        let mut tampered = bytes.clone();
        tampered[index.record_range(2).start + 5] ^= 0x10;
        let err = LatentTrace::from_bytes(&tampered).unwrap_err().to_string();
        assert!(err.contains("entry 2"), "{err}");
        // A leaf, or the root: the table no longer gives the root.
        for offset in [TRACE_HEADER_LEN + 40, 40] {
            let mut tampered = bytes.clone();
            tampered[offset] ^= 1;
            assert!(TraceIndex::parse(&tampered).is_err());
        }
        // Truncated, or a record moved to another index.
        assert!(LatentTrace::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(index.entry(3, &bytes[index.record_range(2)]).is_err());
        assert!(TraceIndex::parse(b"not a trace at all").is_err());
    }

    #[test]
    fn distances_between_entries() {
        let a = TraceEntry { sample: vec![3.0, 4.0], state: vec![] };
        assert!(a.bit_identical(&a.clone()));
        assert_eq!(a.relative_rms(&a), 0.0);
        let b = TraceEntry { sample: vec![3.0, 4.5], state: vec![] };
        assert!(!a.bit_identical(&b));
        assert!((b.relative_rms(&a) - 0.1).abs() < 1e-12);
        let zero = TraceEntry { sample: vec![0.0, -0.0], state: vec![] };
        assert!(!zero.bit_identical(&TraceEntry { sample: vec![0.0, 0.0], state: vec![] }));
        assert_eq!(a.relative_rms(&TraceEntry { sample: vec![1.0], state: vec![] }), f64::INFINITY);
    }
}
