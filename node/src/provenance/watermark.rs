//! The invisible watermark every minted image carries (`genmint-qim-dct-v1`): 64 code bits (a
//! 40-bit tag of the token and a CRC-24 over it) written by quantisation index modulation into
//! low-frequency DCT coefficients of the image's luma, seen at a quarter of its resolution.
//!
//! ```text
//! embed:  RGB8 ─► luma Y ─► L = mean of 4×4 boxes ─► 8×8 blocks of L ─► DCT coefficients
//!         (0,1) (1,0) (1,1) (0,2) (2,0) each moved to the nearest point of the lattice of its
//!         code bit ─► the change in L, added to R, G and B of every pixel of its box
//! detect: RGB8 ─► luma ─► L for each box size in DETECT_BOXES (a resized copy) ─► coefficients,
//!         divided by a gain (1, else each of GAINS: a copy brightened or contrasted) ─► soft bits
//!         summed over their repetitions ─► 64 bits ─► unmask ─► CRC-24 ─► tag, confidence
//! ```
//!
//! Everything is plain arithmetic on `f64` with cosines from `libm`, so the same pixels and token
//! give the same marked pixels on every machine. The README's "Invisible watermark" section is the
//! complete specification; a detector written from it finds the same tag.

use alloy::primitives::{Address, B256};
use genmint_model_runtime::Rgb8Image;
use sha2::{Digest, Sha256};

/// The algorithm's name, as the metadata and the C2PA soft-binding assertion record it.
pub const ALGORITHM: &str = "genmint-qim-dct-v1";
/// The pixel box whose mean is one sample of the marked plane, when embedding.
const EMBED_BOX: usize = 4;
/// Box sizes the detector tries: the original size first, then copies resized to 50 %, 200 %,
/// 75 %, 150 % and 25 %.
const DETECT_BOXES: [usize; 6] = [4, 2, 8, 3, 6, 1];
/// The gains the detector tries when no box size gives a tag at gain 1: 0.80, 0.81, …, 1.25. A
/// copy whose brightness or contrast was changed by a factor has its AC coefficients multiplied by it.
const GAINS: std::ops::RangeInclusive<u32> = 80..=125;
/// The side of a DCT block of the marked plane.
const BLOCK: usize = 8;
/// The (row, column) frequencies of each block that carry code bits, in slot order.
const COEFFICIENTS: [(usize, usize); 5] = [(0, 1), (1, 0), (1, 1), (0, 2), (2, 0)];
/// The quantisation step: a larger one survives more and shows more.
const STEP: f64 = 20.0;
const CODE_BITS: usize = 64;
/// Blocks a payload needs (the smallest image that carries one is 256×256).
pub const MIN_BLOCKS: usize = 64;
/// The confidence a decoded tag needs besides its CRC.
pub const MIN_CONFIDENCE: f64 = 0.25;
const TAG_DOMAIN: &[u8] = b"genmint watermark v1";
const MASK_DOMAIN: &[u8] = b"genmint watermark v1 mask";

/// The 40-bit tag a watermark carries: the first 5 bytes of
/// SHA-256("genmint watermark v1" ‖ chain id u64 BE ‖ contract ‖ token id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatermarkTag(pub [u8; 5]);

impl WatermarkTag {
    pub fn for_token(chain_id: u64, contract: Address, token_id: B256) -> Self {
        let digest = Sha256::new()
            .chain_update(TAG_DOMAIN)
            .chain_update(chain_id.to_be_bytes())
            .chain_update(contract.as_slice())
            .chain_update(token_id.as_slice())
            .finalize();
        let mut tag = [0; 5];
        tag.copy_from_slice(&digest[..5]);
        Self(tag)
    }
}

impl std::fmt::Display for WatermarkTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for WatermarkTag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut tag = [0; 5];
        hex::decode_to_slice(text, &mut tag)
            .map_err(|_| format!("{text:?} is not a watermark tag (10 hex digits)"))?;
        Ok(Self(tag))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkError {
    #[error(
        "a {width}x{height} image is too small to carry a watermark that survives (it needs at least \
         256x256 pixels); the token relies on its C2PA manifest and the chain"
    )]
    TooSmall { width: u32, height: u32 },
    #[error("image of {width}x{height} does not match its {len} pixel bytes")]
    Size { width: u32, height: u32, len: usize },
}

/// What the detector found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The tag, when the CRC holds and the confidence reaches [`MIN_CONFIDENCE`].
    pub tag: Option<WatermarkTag>,
    /// How strongly the image's coefficients sit on the decoded lattice beyond chance: 1 for a
    /// fresh mark, about 0 for an unmarked image.
    pub confidence: f64,
    /// The image's size relative to the marked original (0.5: resized to half).
    pub scale: f64,
}

/// Whether a `width`×`height` image can carry a watermark.
pub fn check_capacity(width: u32, height: u32) -> Result<(), WatermarkError> {
    let (columns, rows) = blocks(width as usize, height as usize, EMBED_BOX);
    if columns * rows < MIN_BLOCKS { Err(WatermarkError::TooSmall { width, height }) } else { Ok(()) }
}

/// `image` with `tag` embedded; deterministic.
pub fn embed(image: &Rgb8Image, tag: WatermarkTag) -> Result<Rgb8Image, WatermarkError> {
    check_size(image)?;
    check_capacity(image.width, image.height)?;
    let code = code_word(tag);
    let basis = Basis::new();
    let (width, height) = (image.width as usize, image.height as usize);
    let plane = mean_plane(&luma(image), width, height, EMBED_BOX);
    let (columns, rows) = blocks(width, height, EMBED_BOX);
    let mut marked = image.clone();
    for by in 0..rows {
        for bx in 0..columns {
            let mut change = [[0.0; BLOCK]; BLOCK];
            for (k, &(v, u)) in COEFFICIENTS.iter().enumerate() {
                let slot = slot(by, bx, k);
                let bit = code[code_bit(by, bx, k)];
                let c = basis.coefficient(&plane, bx, by, v, u);
                let offset = dither(slot) + if bit { STEP / 2.0 } else { 0.0 };
                let target = STEP * ((c - offset) / STEP).round() + offset;
                basis.add(&mut change, v, u, target - c);
            }
            add_to_boxes(&mut marked, &change, bx, by);
        }
    }
    Ok(marked)
}

/// Looks for a watermark at every scale in [`DETECT_BOXES`] at gain 1, then, when none gave a tag,
/// at every gain in [`GAINS`]; the most confident valid tag wins.
pub fn detect(image: &Rgb8Image) -> Result<Detection, WatermarkError> {
    check_size(image)?;
    let (width, height) = (image.width as usize, image.height as usize);
    let y = luma(image);
    let basis = Basis::new();
    let scales: Vec<(f64, Vec<Carrier>)> = DETECT_BOXES
        .into_iter()
        .filter_map(|size| {
            let (columns, rows) = blocks(width, height, size);
            (columns * rows >= MIN_BLOCKS).then(|| {
                let plane = mean_plane(&y, width, height, size);
                (size as f64 / EMBED_BOX as f64, carriers(&plane, columns, rows, &basis))
            })
        })
        .collect();
    let best_at = |gains: &[f64]| {
        let mut best = Detection { tag: None, confidence: 0.0, scale: 1.0 };
        for (scale, carriers) in &scales {
            for &gain in gains {
                let (tag, confidence) = decode(carriers, gain);
                let found = Detection { tag, confidence, scale: *scale };
                let better = match (found.tag, best.tag) {
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    _ => found.confidence > best.confidence,
                };
                if better {
                    best = found;
                }
            }
        }
        best
    };
    let plain = best_at(&[1.0]);
    if plain.tag.is_some() {
        return Ok(plain);
    }
    let gains: Vec<f64> = GAINS.filter(|&g| g != 100).map(|g| f64::from(g) / 100.0).collect();
    let gained = best_at(&gains);
    Ok(if gained.tag.is_some() { gained } else { plain })
}

/// One coefficient that carries a code bit: the bit, its dither and the coefficient's value.
struct Carrier {
    bit: usize,
    dither: f64,
    value: f64,
}

/// Every coefficient of a plane's whole blocks that carries a code bit.
fn carriers(plane: &Plane, columns: usize, rows: usize, basis: &Basis) -> Vec<Carrier> {
    let mut carriers = Vec::with_capacity(columns * rows * COEFFICIENTS.len());
    for by in 0..rows {
        for bx in 0..columns {
            for (k, &(v, u)) in COEFFICIENTS.iter().enumerate() {
                carriers.push(Carrier {
                    bit: code_bit(by, bx, k),
                    dither: dither(slot(by, bx, k)),
                    value: basis.coefficient(plane, bx, by, v, u),
                });
            }
        }
    }
    carriers
}

/// The tag and confidence the carriers give with their values divided by `gain`.
fn decode(carriers: &[Carrier], gain: f64) -> (Option<WatermarkTag>, f64) {
    let mut sums = [0.0; CODE_BITS];
    let mut counts = [0usize; CODE_BITS];
    for carrier in carriers {
        let c = carrier.value / gain - carrier.dither;
        // +1 on the lattice of a 0 bit, -1 on that of a 1 bit.
        sums[carrier.bit] += libm::cos(2.0 * std::f64::consts::PI * c / STEP);
        counts[carrier.bit] += 1;
    }
    let confidence = confidence(&sums, &counts);
    let mut bits = [false; CODE_BITS];
    for (bit, sum) in bits.iter_mut().zip(sums) {
        *bit = sum < 0.0;
    }
    let tag = tag_of(&bits).filter(|_| confidence >= MIN_CONFIDENCE);
    (tag, confidence)
}

/// How far the soft sums stand above what an unmarked image gives: (Σ |S_j| − Σ E_j) / (Σ n_j − Σ E_j),
/// where S_j sums the n_j soft values of bit j and E_j = √(n_j / π) is the mean of |S_j| for random
/// phases. About 0 for an unmarked image, 1 for a fresh mark.
fn confidence(sums: &[f64; CODE_BITS], counts: &[usize; CODE_BITS]) -> f64 {
    let chance: f64 = counts.iter().map(|&n| libm::sqrt(n as f64 / std::f64::consts::PI)).sum();
    let total = counts.iter().sum::<usize>() as f64;
    let found: f64 = sums.iter().map(|s| s.abs()).sum();
    if total <= chance { 0.0 } else { (found - chance) / (total - chance) }
}

/// The number of coefficient `k` of block (bx, by), for its dither: (256 · by + bx) · 5 + k (the
/// same whatever the image's width).
fn slot(by: usize, bx: usize, k: usize) -> usize {
    (256 * by + bx) * COEFFICIENTS.len() + k
}

/// The code bit coefficient `k` of block (bx, by) carries: (5 · bx + k + 23 · by) mod 64. It does
/// not depend on the image's width, so a copy cut at the right or the bottom still reads.
fn code_bit(by: usize, bx: usize, k: usize) -> usize {
    (COEFFICIENTS.len() * bx + k + 23 * by) % CODE_BITS
}

/// The slot's lattice offset, so that flat areas (coefficients near 0) do not all read as one bit:
/// STEP · frac(slot · 0.6180339887498949).
fn dither(slot: usize) -> f64 {
    let turn = slot as f64 * 0.618_033_988_749_894_9;
    STEP * (turn - libm::floor(turn))
}

/// tag ‖ CRC-24(tag), most significant bit first, XOR the mask.
fn code_word(tag: WatermarkTag) -> [bool; CODE_BITS] {
    let word = u64::from_be_bytes(framed(tag)) ^ mask();
    std::array::from_fn(|i| (word >> (CODE_BITS - 1 - i)) & 1 == 1)
}

fn framed(tag: WatermarkTag) -> [u8; 8] {
    let crc = crc24(&tag.0).to_be_bytes();
    let mut bytes = [0; 8];
    bytes[..5].copy_from_slice(&tag.0);
    bytes[5..].copy_from_slice(&crc[1..]);
    bytes
}

/// The tag of 64 decoded bits, when their CRC holds.
fn tag_of(bits: &[bool; CODE_BITS]) -> Option<WatermarkTag> {
    let word = bits.iter().fold(0u64, |word, &bit| (word << 1) | u64::from(bit)) ^ mask();
    let bytes = word.to_be_bytes();
    let mut tag = [0; 5];
    tag.copy_from_slice(&bytes[..5]);
    let tag = WatermarkTag(tag);
    (framed(tag) == bytes).then_some(tag)
}

/// The first 8 bytes of SHA-256("genmint watermark v1 mask"), big-endian.
fn mask() -> u64 {
    let digest = Sha256::digest(MASK_DOMAIN);
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// CRC-24/OPENPGP: polynomial 0x864CFB, initial value 0xB704CE, no reflection, no final XOR.
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB7_04CE;
    for &byte in data {
        crc ^= u32::from(byte) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

fn check_size(image: &Rgb8Image) -> Result<(), WatermarkError> {
    let expected = image.width as usize * image.height as usize * 3;
    if image.pixels.len() == expected {
        Ok(())
    } else {
        Err(WatermarkError::Size { width: image.width, height: image.height, len: image.pixels.len() })
    }
}

/// Luma per pixel, (299 R + 587 G + 114 B) / 1000.
fn luma(image: &Rgb8Image) -> Vec<f64> {
    image
        .pixels
        .chunks_exact(3)
        .map(|p| (299.0 * f64::from(p[0]) + 587.0 * f64::from(p[1]) + 114.0 * f64::from(p[2])) / 1000.0)
        .collect()
}

/// The luma plane seen through `size`×`size` boxes: sample (x, y) is the mean of the box whose
/// top-left pixel is (x · size, y · size).
struct Plane {
    width: usize,
    samples: Vec<f64>,
}

fn mean_plane(luma: &[f64], width: usize, height: usize, size: usize) -> Plane {
    let (w, h) = (width / size, height / size);
    let mut samples = vec![0.0; w * h];
    for y in 0..h * size {
        for x in 0..w * size {
            samples[(y / size) * w + x / size] += luma[y * width + x];
        }
    }
    let area = (size * size) as f64;
    samples.iter_mut().for_each(|s| *s /= area);
    Plane { width: w, samples }
}

/// The whole 8×8 blocks of the plane an image gives through boxes of `size`: (columns, rows).
fn blocks(width: usize, height: usize, size: usize) -> (usize, usize) {
    (width / size / BLOCK, height / size / BLOCK)
}

/// The orthonormal 8-point DCT-II basis: `cos[k][n] = a(k) · cos(π (2n + 1) k / 16)`, a(0) = √(1/8),
/// a(k) = √(2/8) = 1/2.
struct Basis {
    cos: [[f64; BLOCK]; BLOCK],
}

impl Basis {
    fn new() -> Self {
        let mut cos = [[0.0; BLOCK]; BLOCK];
        for (k, row) in cos.iter_mut().enumerate() {
            let scale = if k == 0 { libm::sqrt(1.0 / BLOCK as f64) } else { libm::sqrt(2.0 / BLOCK as f64) };
            for (n, value) in row.iter_mut().enumerate() {
                let angle = std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2 * BLOCK) as f64;
                *value = scale * libm::cos(angle);
            }
        }
        Self { cos }
    }

    /// Coefficient (v, u) of block (bx, by): Σ_y Σ_x cos[v][y] · cos[u][x] · plane(8 bx + x, 8 by + y).
    fn coefficient(&self, plane: &Plane, bx: usize, by: usize, v: usize, u: usize) -> f64 {
        let mut sum = 0.0;
        for y in 0..BLOCK {
            let row = (by * BLOCK + y) * plane.width + bx * BLOCK;
            for x in 0..BLOCK {
                sum += self.cos[v][y] * self.cos[u][x] * plane.samples[row + x];
            }
        }
        sum
    }

    /// Adds `amount` of basis function (v, u) to a block's change.
    fn add(&self, change: &mut [[f64; BLOCK]; BLOCK], v: usize, u: usize, amount: f64) {
        for (y, row) in change.iter_mut().enumerate() {
            for (x, value) in row.iter_mut().enumerate() {
                *value += amount * self.cos[v][y] * self.cos[u][x];
            }
        }
    }
}

/// Adds a block's change to every channel of every pixel of each sample's box:
/// new = clamp(floor(old + change + 0.5), 0, 255).
fn add_to_boxes(image: &mut Rgb8Image, change: &[[f64; BLOCK]; BLOCK], bx: usize, by: usize) {
    let width = image.width as usize;
    let side = BLOCK * EMBED_BOX;
    for py in by * side..(by + 1) * side {
        for px in bx * side..(bx + 1) * side {
            let delta = change[(py - by * side) / EMBED_BOX][(px - bx * side) / EMBED_BOX];
            let at = (py * width + px) * 3;
            for channel in &mut image.pixels[at..at + 3] {
                *channel = libm::floor(f64::from(*channel) + delta + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture with edges, gradients and texture, like a photograph's mix.
    fn picture(width: u32, height: u32) -> Rgb8Image {
        let mut pixels = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (f64::from(x), f64::from(y));
                let sky = 150.0 + 60.0 * (fy / f64::from(height));
                let hill = if fy > 0.6 * f64::from(height) + 40.0 * (fx / 50.0).sin() { 1.0 } else { 0.0 };
                let texture = 12.0 * ((fx * 0.9).sin() * (fy * 1.3).cos());
                let r = sky * (1.0 - hill) + (60.0 + texture) * hill;
                let g = (sky + 10.0) * (1.0 - hill) + (110.0 + texture) * hill;
                let b = (sky + 40.0) * (1.0 - hill) + (40.0 + texture) * hill;
                pixels.extend([r, g, b].map(|c| c.clamp(0.0, 255.0) as u8));
            }
        }
        Rgb8Image { width, height, pixels }
    }

    fn tag() -> WatermarkTag {
        WatermarkTag::for_token(31337, Address::repeat_byte(7), B256::repeat_byte(9))
    }

    fn psnr(a: &Rgb8Image, b: &Rgb8Image) -> f64 {
        let mse =
            a.pixels.iter().zip(&b.pixels).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>()
                / a.pixels.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }

    #[test]
    fn crc24_is_openpgp() {
        assert_eq!(crc24(b"123456789"), 0x21CF02);
    }

    #[test]
    fn code_words_round_trip_and_a_flipped_bit_is_refused() {
        let mut bits = code_word(tag());
        assert_eq!(tag_of(&bits), Some(tag()));
        bits[17] = !bits[17];
        assert_eq!(tag_of(&bits), None);
        assert_eq!(tag_of(&[false; CODE_BITS]), None);
    }

    #[test]
    fn embeds_deterministically_invisibly_and_detects_its_tag() {
        let image = picture(512, 512);
        let marked = embed(&image, tag()).unwrap();
        assert_eq!(marked, embed(&image, tag()).unwrap(), "same pixels and token, same marked pixels");
        assert_ne!(marked, image);
        let quality = psnr(&image, &marked);
        assert!(quality >= 40.0, "PSNR {quality:.1} dB");
        let found = detect(&marked).unwrap();
        assert_eq!(found.tag, Some(tag()));
        assert!(found.confidence > 0.9, "{found:?}");
        assert_eq!(found.scale, 1.0);
        let other = WatermarkTag::for_token(1, Address::repeat_byte(7), B256::repeat_byte(9));
        assert_eq!(detect(&embed(&image, other).unwrap()).unwrap().tag, Some(other));
    }

    #[test]
    fn an_unmarked_image_has_no_tag() {
        let found = detect(&picture(512, 512)).unwrap();
        assert_eq!(found.tag, None);
        assert!(found.confidence < MIN_CONFIDENCE, "{found:?}");
    }

    #[test]
    fn a_copy_resized_to_half_still_names_the_token() {
        let marked = embed(&picture(512, 512), tag()).unwrap();
        // Each pixel of the copy is the mean of a 2×2 box, as an area resize gives.
        let half = Rgb8Image {
            width: 256,
            height: 256,
            pixels: (0..256 * 256 * 3)
                .map(|i| {
                    let (c, p) = (i % 3, i / 3);
                    let (x, y) = (p % 256 * 2, p / 256 * 2);
                    let at =
                        |dx: usize, dy: usize| u32::from(marked.pixels[((y + dy) * 512 + x + dx) * 3 + c]);
                    ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8
                })
                .collect(),
        };
        let found = detect(&half).unwrap();
        assert_eq!(found.tag, Some(tag()), "{found:?}");
        assert_eq!(found.scale, 0.5);
    }

    #[test]
    fn a_brightened_or_contrasted_copy_still_names_the_token() {
        let marked = embed(&picture(512, 512), tag()).unwrap();
        let mean = marked.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / marked.pixels.len() as f64;
        for (factor, around) in [(1.1, 0.0), (0.9, 0.0), (1.1, mean), (0.9, mean)] {
            let copy = Rgb8Image {
                pixels: marked
                    .pixels
                    .iter()
                    .map(|&p| (around + factor * (f64::from(p) - around)).round().clamp(0.0, 255.0) as u8)
                    .collect(),
                ..marked.clone()
            };
            let found = detect(&copy).unwrap();
            assert_eq!(found.tag, Some(tag()), "factor {factor} around {around}: {found:?}");
        }
    }

    #[test]
    fn small_images_say_why_they_are_not_marked() {
        assert_eq!(check_capacity(32, 32), Err(WatermarkError::TooSmall { width: 32, height: 32 }));
        assert_eq!(check_capacity(256, 256), Ok(()));
        assert!(matches!(embed(&picture(64, 64), tag()), Err(WatermarkError::TooSmall { .. })));
        assert_eq!(detect(&picture(32, 32)).unwrap().tag, None);
    }
}
