//! Content identifiers computed locally, byte for byte as Kubo computes them on `ipfs add`.
//!
//! A file is cut into fixed-size chunks. One chunk is the whole DAG: with raw leaves its CID is
//! the raw-codec CID of `sha256(bytes)`. More chunks are linked by a balanced tree of dag-pb nodes
//! carrying UnixFS `File` data (Kubo's default "balanced" layout): each node holds at most
//! `max_links` children, and the tree grows one level whenever the current root is full. The
//! protobuf encoding is written by hand here, in the field order Kubo's encoder uses, so the
//! node can check every CID Kubo reports before it signs or mints anything.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Multicodec of raw binary blocks.
const RAW_CODEC: u64 = 0x55;
/// Multicodec of dag-pb (protobuf) blocks.
const DAG_PB_CODEC: u64 = 0x70;
/// Multihash code of sha2-256.
const SHA2_256: u64 = 0x12;
/// Length of a sha2-256 digest.
const SHA2_256_LEN: usize = 32;
/// UnixFS `Data.DataType` value of a file.
const UNIXFS_FILE: u64 = 2;
/// Longest CID string accepted by [`Cid::from_str`]; real CIDs are far shorter.
const MAX_CID_STR_LEN: usize = 256;
/// Lower-case RFC 4648 base32 alphabet (multibase prefix `b`).
const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Bitcoin base58 alphabet, which CIDv0 strings use.
const BASE58_BTC: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The CID version of the DAG nodes an import produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CidVersion {
    /// A bare sha2-256 multihash of a dag-pb node, printed in base58 (`Qm…`). Raw leaves are
    /// always CIDv1, as in Kubo.
    V0,
    /// Version, codec and multihash, printed in multibase base32 (`b…`).
    V1,
}

/// How bytes are cut and linked into a UnixFS DAG; the parameters of Kubo's `ipfs add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProfile {
    /// Bytes per leaf (`--chunker size-N`).
    pub chunk_size: usize,
    /// Leaves are raw blocks rather than dag-pb nodes wrapping UnixFS data (`--raw-leaves`).
    pub raw_leaves: bool,
    /// Children per interior node (Kubo's `Import.UnixFSFileMaxLinks`).
    pub max_links: usize,
    /// CID version of the nodes (`--cid-version`).
    pub cid_version: CidVersion,
}

impl ImportProfile {
    /// Kubo's `unixfs-v1-2025` import profile, which genmint records every CID under: CIDv1,
    /// sha2-256, raw leaves, 1 MiB chunks, up to 1024 links per node.
    pub const UNIXFS_V1_2025: ImportProfile = ImportProfile {
        chunk_size: 1_048_576,
        raw_leaves: true,
        max_links: 1024,
        cid_version: CidVersion::V1,
    };

    /// The CID Kubo gives `bytes` when they are added as one file under this profile.
    pub fn cid_of(&self, bytes: &[u8]) -> Result<Cid, CidError> {
        if self.chunk_size == 0 {
            return Err(CidError::InvalidProfile("chunk size must be at least one byte"));
        }
        if self.max_links < 2 {
            return Err(CidError::InvalidProfile("a node must be able to hold at least two links"));
        }
        let mut builder = BalancedBuilder { profile: self, chunks: bytes.chunks(self.chunk_size).peekable() };
        Ok(builder.layout().cid)
    }
}

/// A content identifier, held in its binary form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cid {
    bytes: Vec<u8>,
}

impl Cid {
    /// The CIDv1 of `bytes` stored as one raw block: what Kubo reports for a file of at most one
    /// chunk added with raw leaves.
    pub fn raw_sha256(bytes: &[u8]) -> Cid {
        Cid::v1(RAW_CODEC, &Sha256::digest(bytes))
    }

    /// The binary form (for CIDv1: version, codec and multihash varints; for CIDv0: the multihash).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The CID version.
    pub fn version(&self) -> CidVersion {
        if is_v0_multihash(&self.bytes) { CidVersion::V0 } else { CidVersion::V1 }
    }

    fn v1(codec: u64, sha256: &[u8]) -> Cid {
        let mut bytes = Vec::with_capacity(4 + SHA2_256_LEN);
        put_varint(&mut bytes, 1);
        put_varint(&mut bytes, codec);
        put_sha256_multihash(&mut bytes, sha256);
        Cid { bytes }
    }

    fn v0(sha256: &[u8]) -> Cid {
        let mut bytes = Vec::with_capacity(2 + SHA2_256_LEN);
        put_sha256_multihash(&mut bytes, sha256);
        Cid { bytes }
    }
}

impl fmt::Display for Cid {
    /// CIDv1 as multibase base32 lower case (`bafy…`, `bafk…`), CIDv0 in base58 (`Qm…`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version() {
            CidVersion::V1 => write!(f, "b{}", base32_lower(&self.bytes)),
            CidVersion::V0 => f.write_str(&base58_btc(&self.bytes)),
        }
    }
}

/// A CID travels in JSON as its text form, like Kubo writes it.
impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for Cid {
    type Err = CidParseError;

    /// Accepts a CIDv1 in multibase base32 lower case, the only form genmint records.
    fn from_str(s: &str) -> Result<Cid, CidParseError> {
        if s.len() > MAX_CID_STR_LEN {
            return Err(CidParseError::TooLong { len: s.len() });
        }
        if s.len() == 46 && s.starts_with("Qm") {
            return Err(CidParseError::Version0(s.to_owned()));
        }
        let Some(body) = s.strip_prefix('b') else {
            return Err(CidParseError::NotBase32(s.to_owned()));
        };
        let bytes = base32_lower_decode(body).ok_or_else(|| CidParseError::BadBase32(s.to_owned()))?;
        parse_v1(&bytes).map_err(|reason| CidParseError::Malformed { cid: s.to_owned(), reason })?;
        Ok(Cid { bytes })
    }
}

/// An import profile that cannot produce a DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("invalid import profile: {0}")]
    InvalidProfile(&'static str),
}

/// A string that is not a CID genmint accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidParseError {
    #[error("CID string of {len} characters is too long to be a CID")]
    TooLong { len: usize },
    #[error("`{0}` is a CIDv0; genmint records CIDv1 in base32: convert it with `ipfs cid base32 {0}`")]
    Version0(String),
    #[error("`{0}` is not a base32 CIDv1 (it must start with `b`, like `bafy…` or `bafk…`)")]
    NotBase32(String),
    #[error("`{0}` contains characters outside lower-case base32 or has a bad length")]
    BadBase32(String),
    #[error("`{cid}` is not a valid CIDv1: {reason}")]
    Malformed { cid: String, reason: &'static str },
}

/// A finished block as its parent links to it.
struct Linked {
    cid: Cid,
    /// Bytes of file data under the block (UnixFS `blocksizes` entry).
    file_size: u64,
    /// Encoded size of the block plus everything under it (dag-pb `Tsize`).
    dag_size: u64,
}

/// Kubo's balanced layout over a stream of chunks.
struct BalancedBuilder<'a, I: Iterator<Item = &'a [u8]>> {
    profile: &'a ImportProfile,
    chunks: std::iter::Peekable<I>,
}

impl<'a, I: Iterator<Item = &'a [u8]>> BalancedBuilder<'a, I> {
    fn done(&mut self) -> bool {
        self.chunks.peek().is_none()
    }

    /// The first leaf is the root while it is alone; each time the root is full it becomes the
    /// first child of a root one level deeper, which is then filled.
    fn layout(&mut self) -> Linked {
        let mut root = self.next_leaf();
        let mut depth = 1;
        while !self.done() {
            root = self.fill(vec![root], depth);
            depth += 1;
        }
        root
    }

    /// Fills an interior node at `depth` (1 = its children are leaves) while it has room and
    /// data remains.
    fn fill(&mut self, mut children: Vec<Linked>, depth: usize) -> Linked {
        while children.len() < self.profile.max_links && !self.done() {
            let child = if depth == 1 { self.next_leaf() } else { self.fill(Vec::new(), depth - 1) };
            children.push(child);
        }
        self.interior(&children)
    }

    fn next_leaf(&mut self) -> Linked {
        // An empty file still has one (empty) leaf.
        let data = self.chunks.next().unwrap_or_default();
        let file_size = data.len() as u64;
        if self.profile.raw_leaves {
            return Linked { cid: Cid::raw_sha256(data), file_size, dag_size: file_size };
        }
        let mut unixfs = Vec::with_capacity(data.len() + 16);
        put_varint_field(&mut unixfs, 1, UNIXFS_FILE);
        if !data.is_empty() {
            put_bytes_field(&mut unixfs, 2, data);
        }
        put_varint_field(&mut unixfs, 3, file_size);
        let node = encode_pb_node(&[], &unixfs);
        Linked { cid: self.node_cid(&node), file_size, dag_size: node.len() as u64 }
    }

    fn interior(&self, children: &[Linked]) -> Linked {
        let file_size = children.iter().map(|c| c.file_size).sum();
        let mut unixfs = Vec::with_capacity(8 + 5 * children.len());
        put_varint_field(&mut unixfs, 1, UNIXFS_FILE);
        put_varint_field(&mut unixfs, 3, file_size);
        for child in children {
            put_varint_field(&mut unixfs, 4, child.file_size);
        }
        let node = encode_pb_node(children, &unixfs);
        let dag_size = node.len() as u64 + children.iter().map(|c| c.dag_size).sum::<u64>();
        Linked { cid: self.node_cid(&node), file_size, dag_size }
    }

    fn node_cid(&self, node: &[u8]) -> Cid {
        let digest = Sha256::digest(node);
        match self.profile.cid_version {
            CidVersion::V0 => Cid::v0(&digest),
            CidVersion::V1 => Cid::v1(DAG_PB_CODEC, &digest),
        }
    }
}

/// dag-pb `PBNode`: the links (field 2) come before the data (field 1), and every link carries
/// its hash, an empty name and its total size.
fn encode_pb_node(links: &[Linked], data: &[u8]) -> Vec<u8> {
    let mut node = Vec::with_capacity(data.len() + 48 * links.len() + 8);
    for link in links {
        let mut pb_link = Vec::with_capacity(48);
        put_bytes_field(&mut pb_link, 1, link.cid.as_bytes());
        put_bytes_field(&mut pb_link, 2, b"");
        put_varint_field(&mut pb_link, 3, link.dag_size);
        put_bytes_field(&mut node, 2, &pb_link);
    }
    put_bytes_field(&mut node, 1, data);
    node
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    put_varint(out, field << 3);
    put_varint(out, value);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_sha256_multihash(out: &mut Vec<u8>, sha256: &[u8]) {
    put_varint(out, SHA2_256);
    put_varint(out, sha256.len() as u64);
    out.extend_from_slice(sha256);
}

/// Unsigned LEB128, as protobuf and multiformats both use.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a minimally encoded unsigned varint (multiformats forbid padding) from the front.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return None;
            }
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

fn is_v0_multihash(bytes: &[u8]) -> bool {
    bytes.len() == 2 + SHA2_256_LEN && bytes[0] == SHA2_256 as u8 && bytes[1] == SHA2_256_LEN as u8
}

/// Checks the binary form of a CIDv1: version 1, a codec, and a multihash whose digest length
/// matches the bytes that follow.
fn parse_v1(mut bytes: &[u8]) -> Result<(), &'static str> {
    match take_varint(&mut bytes) {
        Some(1) => {}
        Some(_) => return Err("unsupported CID version"),
        None => return Err("bad version varint"),
    }
    take_varint(&mut bytes).ok_or("bad codec varint")?;
    take_varint(&mut bytes).ok_or("bad multihash code varint")?;
    let len = take_varint(&mut bytes).ok_or("bad multihash length varint")?;
    if bytes.len() as u64 != len {
        return Err("multihash digest length does not match its prefix");
    }
    Ok(())
}

fn base32_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_LOWER[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32_LOWER[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes unpadded lower-case base32, rejecting lengths no byte string has and non-zero
/// trailing bits, so that every accepted string is the canonical form of its bytes.
fn base32_lower_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = BASE32_LOWER.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    (bits < 5 && buffer == 0).then_some(out)
}

fn base58_btc(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits of the big-endian number `bytes`.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &byte in &bytes[zeros..] {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let leading = std::iter::repeat_n('1', zeros);
    leading.chain(digits.iter().rev().map(|&d| BASE58_BTC[d as usize] as char)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    const KUBO_DEFAULT_V1: ImportProfile =
        ImportProfile { chunk_size: 262_144, raw_leaves: true, max_links: 174, cid_version: CidVersion::V1 };

    #[test]
    fn sixteen_bytes_are_one_raw_block() {
        let want = "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a";
        assert_eq!(Cid::raw_sha256(b"hello provenance").to_string(), want);
        let cid = ImportProfile::UNIXFS_V1_2025.cid_of(b"hello provenance").unwrap();
        assert_eq!(cid.to_string(), want);
        assert_eq!(cid.version(), CidVersion::V1);
    }

    #[test]
    fn multi_chunk_file_is_a_balanced_dag_pb_tree() {
        let cid = KUBO_DEFAULT_V1.cid_of(&pattern(300_000)).unwrap();
        assert_eq!(cid.to_string(), "bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq");
    }

    #[test]
    fn exactly_one_chunk_is_a_raw_block_and_one_more_byte_is_a_tree() {
        let profile = ImportProfile::UNIXFS_V1_2025;
        let one_chunk = pattern(profile.chunk_size);
        assert_eq!(profile.cid_of(&one_chunk).unwrap(), Cid::raw_sha256(&one_chunk));
        let over = pattern(profile.chunk_size + 1);
        assert!(profile.cid_of(&over).unwrap().to_string().starts_with("bafybei"));
    }

    #[test]
    fn empty_file_is_the_empty_raw_block() {
        let cid = ImportProfile::UNIXFS_V1_2025.cid_of(b"").unwrap();
        assert_eq!(cid.to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
    }

    #[test]
    fn cid_v0_files_match_well_known_cids() {
        let profile = ImportProfile {
            chunk_size: 262_144,
            raw_leaves: false,
            max_links: 174,
            cid_version: CidVersion::V0,
        };
        let empty = profile.cid_of(b"").unwrap();
        assert_eq!(empty.to_string(), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
        assert_eq!(empty.version(), CidVersion::V0);
        let hello = profile.cid_of(b"hello world\n").unwrap();
        assert_eq!(hello.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    // The vectors below were produced by Kubo 0.42 (`ipfs add -Q` with the stated options) over
    // the `i % 251` pattern.

    #[test]
    fn a_full_root_of_1024_links_grows_a_level() {
        // 1030 chunks: the root links a full node of 1024 leaves and a node of the last 6.
        let small_chunks = ImportProfile { chunk_size: 1024, ..ImportProfile::UNIXFS_V1_2025 };
        let cid = small_chunks.cid_of(&pattern(1030 * 1024)).unwrap();
        assert_eq!(cid.to_string(), "bafybeiaac2shgttwn7d2wzscwwp74x5g4sjygaayc6wtwxqplw4bpvuqiy");
        let two_chunks = ImportProfile::UNIXFS_V1_2025.cid_of(&pattern(1030 * 1024)).unwrap();
        assert_eq!(two_chunks.to_string(), "bafybeidnucgneuihctxtmhg4sra6itwmdfwumiylh4n4rdnayo2extsggy");
    }

    #[test]
    fn deep_trees_match_kubo() {
        let three_links = ImportProfile { chunk_size: 1, max_links: 3, ..ImportProfile::UNIXFS_V1_2025 };
        let nine = three_links.cid_of(&pattern(9)).unwrap();
        assert_eq!(nine.to_string(), "bafybeid4kuy53obquaxx6wsz3qluar2yvolcspiemr43hxl2hnlppaxdia");
        let ten = three_links.cid_of(&pattern(10)).unwrap();
        assert_eq!(ten.to_string(), "bafybeiawtupx5c3ueo3u7zf2wut4nldpchxohrzamq3frcywsarnor6eny");
        // 300 000 one-byte leaves, twelve levels deep.
        let deep = three_links.cid_of(&pattern(300_000)).unwrap();
        assert_eq!(deep.to_string(), "bafybeigtxc2codjimbq7br2oj2nox4fz5245aegfzjngxitragpwtwdwlq");
    }

    #[test]
    fn dag_pb_leaves_and_cid_v0_match_kubo() {
        let v1_pb_leaves = ImportProfile { raw_leaves: false, ..KUBO_DEFAULT_V1 };
        let cid = v1_pb_leaves.cid_of(&pattern(300_000)).unwrap();
        assert_eq!(cid.to_string(), "bafybeido3i2mncgfivzjepqotrgmwlyxsdu63iml3xck2qvre7m2cjdpda");
        let v0 = ImportProfile {
            chunk_size: 1024,
            raw_leaves: false,
            max_links: 1024,
            cid_version: CidVersion::V0,
        };
        let cid = v0.cid_of(&pattern(1030 * 1024)).unwrap();
        assert_eq!(cid.to_string(), "QmTRnYksTxjxdJqwhinsBRjDWeBPJdProvMPD7YYMT6Hns");
        // Raw leaves under CIDv0 nodes: the leaves are CIDv1, the interior nodes CIDv0.
        let v0_raw_leaves = ImportProfile { raw_leaves: true, ..v0 };
        let cid = v0_raw_leaves.cid_of(&pattern(1030 * 1024)).unwrap();
        assert_eq!(cid.to_string(), "QmRXvMWhidGCxstqPR4A5JRkcNL8bN2p6NgJ4J9UehU2Aw");
    }

    #[test]
    fn full_root_grows_a_level() {
        // Three links per node over ten one-byte chunks: depth 3 (3 × 3 = 9 < 10 leaves).
        let narrow =
            ImportProfile { chunk_size: 1, raw_leaves: true, max_links: 3, cid_version: CidVersion::V1 };
        let nine = narrow.cid_of(&pattern(9)).unwrap();
        let ten = narrow.cid_of(&pattern(10)).unwrap();
        assert_ne!(nine, ten);
        let wide = ImportProfile { max_links: 16, ..narrow };
        assert_ne!(narrow.cid_of(&pattern(10)).unwrap(), wide.cid_of(&pattern(10)).unwrap());
        assert_eq!(narrow.cid_of(&pattern(3)).unwrap(), wide.cid_of(&pattern(3)).unwrap());
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let zero_chunk = ImportProfile { chunk_size: 0, ..ImportProfile::UNIXFS_V1_2025 };
        assert!(matches!(zero_chunk.cid_of(b"x"), Err(CidError::InvalidProfile(_))));
        let one_link = ImportProfile { max_links: 1, ..ImportProfile::UNIXFS_V1_2025 };
        assert!(matches!(one_link.cid_of(b"x"), Err(CidError::InvalidProfile(_))));
    }

    #[test]
    fn base32_cids_round_trip() {
        for text in [
            "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a",
            "bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq",
        ] {
            let cid: Cid = text.parse().unwrap();
            assert_eq!(cid.to_string(), text);
            assert_eq!(cid.version(), CidVersion::V1);
        }
        let raw = Cid::raw_sha256(b"hello provenance");
        assert_eq!(raw.to_string().parse::<Cid>().unwrap(), raw);
    }

    #[test]
    fn other_cid_forms_are_rejected_with_a_reason() {
        let v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse::<Cid>().unwrap_err();
        assert!(matches!(v0, CidParseError::Version0(_)));
        assert!(v0.to_string().contains("ipfs cid base32"));
        let upper = "BAFKREIEMCJZQUB4FPIESXYYK6UZW7VMEW43CONUBS64TWV57VP2JVYL33A".parse::<Cid>();
        assert!(matches!(upper, Err(CidParseError::NotBase32(_))));
        assert!(matches!("".parse::<Cid>(), Err(CidParseError::NotBase32(_))));
        assert!(matches!("bafk!".parse::<Cid>(), Err(CidParseError::BadBase32(_))));
        // Dropping one character leaves a length no byte string encodes to; dropping two leaves a
        // whole number of bytes, one short of the digest length the multihash states.
        let short = "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33";
        assert!(matches!(short.parse::<Cid>(), Err(CidParseError::BadBase32(_))));
        let truncated = "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl3";
        assert!(matches!(truncated.parse::<Cid>(), Err(CidParseError::Malformed { .. })));
        let long = format!("b{}", "a".repeat(MAX_CID_STR_LEN));
        assert!(matches!(long.parse::<Cid>(), Err(CidParseError::TooLong { .. })));
        // Version 2 does not exist.
        let mut bytes = Cid::raw_sha256(b"x").as_bytes().to_vec();
        bytes[0] = 2;
        let v2 = format!("b{}", base32_lower(&bytes));
        assert!(matches!(v2.parse::<Cid>(), Err(CidParseError::Malformed { .. })));
    }

    #[test]
    fn varints_are_minimal_leb128() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut slice = &out[..];
        assert_eq!(take_varint(&mut slice), Some(300));
        assert!(slice.is_empty());
        let mut padded: &[u8] = &[0x81, 0x00];
        assert_eq!(take_varint(&mut padded), None);
    }
}
