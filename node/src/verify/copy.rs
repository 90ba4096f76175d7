//! A copy of a minted image met elsewhere (re-encoded, resized, cut, its metadata stripped): read
//! it whatever its format, look for the invisible watermark, and say what holds for a copy.
//!
//! A copy proves less than the pinned original: its bytes, its pixels and its C2PA manifest are
//! not the minted ones. What carries over is the token its watermark names, checked against the
//! chain like any token, and its likeness to the pinned image (a 64-bit difference hash). The
//! claims about the file itself are proven by the pinned original only, which verification
//! fetches and checks beside the copy. A copy whose watermark was destroyed can still be matched
//! by its fingerprint alone, in a node's index of every token's fingerprint ([`FingerprintIndex`]),
//! with the distance reported: weaker evidence, since different pictures can look alike.

use std::future::Future;

use genmint_model_runtime::Rgb8Image;
use serde::Serialize;

use super::regenerate::{DHASH_THRESHOLD, dhash};
use crate::provenance::watermark::{self, WatermarkTag};

/// The largest image file `genmint detect` and `POST /v1/detect` read.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;
/// The largest side of an image genmint decodes to look for a watermark.
pub const MAX_SIDE: u32 = 4096;
/// The most memory decoding one image may take (a 4096×4096 RGBA picture is 64 MiB).
const MAX_DECODE_BYTES: u64 = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("not an image genmint reads (PNG, JPEG or WebP): {0}")]
    NotAnImage(String),
    #[error("the image is larger than genmint reads ({MAX_SIDE} pixels a side at most): {0}")]
    TooLarge(String),
}

/// Decodes a PNG, JPEG or WebP file into RGB8 pixels (alpha dropped), within bounds.
pub fn decode(bytes: &[u8]) -> Result<Rgb8Image, CopyError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| CopyError::NotAnImage(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {}
        Some(other) => return Err(CopyError::NotAnImage(format!("{other:?} files are not read"))),
        None => return Err(CopyError::NotAnImage("the bytes are of no known image format".into())),
    }
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(e) => CopyError::TooLarge(e.to_string()),
        e => CopyError::NotAnImage(e.to_string()),
    })?;
    let rgb = decoded.to_rgb8();
    Ok(Rgb8Image { width: rgb.width(), height: rgb.height(), pixels: rgb.into_raw() })
}

/// What the detector says of an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detected {
    /// A genmint watermark with a valid tag is in the image.
    pub present: bool,
    pub algorithm: &'static str,
    /// The 40-bit tag, 10 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// 1 for a fresh mark, about 0 for an unmarked image; a tag is accepted from 0.25 on.
    pub confidence: f64,
    /// The image's size relative to the marked original, as the detector found it.
    pub scale: f64,
    pub width: u32,
    pub height: u32,
    /// The image's perceptual fingerprint: its 64-bit dHash, 0x and 16 hex digits.
    pub fingerprint: String,
}

impl Detected {
    pub fn tag(&self) -> Option<WatermarkTag> {
        self.tag.as_deref().and_then(|tag| tag.parse().ok())
    }

    pub fn fingerprint(&self) -> Option<u64> {
        u64::from_str_radix(self.fingerprint.strip_prefix("0x")?, 16).ok()
    }
}

/// A token whose pinned image's fingerprint is near a copy's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FingerprintMatch {
    /// The token id as 0x-hex (the request digest).
    pub token_id: String,
    /// Bits of the 64-bit dHash in which the two differ (at most [`DHASH_THRESHOLD`]).
    pub distance: u32,
}

/// An index of the fingerprints of a contract's tokens: a node's gallery, in the node or over its
/// HTTP API (`GET /v1/fingerprints/{dhash}`).
pub trait FingerprintIndex: Sync {
    /// The tokens within [`DHASH_THRESHOLD`] bits of `fingerprint`, nearest first.
    fn nearest(&self, fingerprint: u64)
    -> impl Future<Output = Result<Vec<FingerprintMatch>, String>> + Send;
}

/// No index: nothing is matched by fingerprint.
pub struct NoFingerprintIndex;

impl FingerprintIndex for NoFingerprintIndex {
    async fn nearest(&self, _fingerprint: u64) -> Result<Vec<FingerprintMatch>, String> {
        Ok(Vec::new())
    }
}

/// The token a watermark tag points to: of this chain and contract, as its mint events show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRef {
    /// The token id as 0x-hex (the request digest).
    pub token_id: String,
    pub chain_id: u64,
    pub contract: String,
}

/// What `genmint detect` and `POST /v1/detect` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectReport {
    #[serde(flatten)]
    pub detected: Detected,
    /// The token the tag points to, when one of this contract's mint events has it.
    pub token: Option<TokenRef>,
    /// How the token was (or was not) found.
    pub lookup: String,
    /// Without a watermark: the tokens whose pinned image looks like this one, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fingerprint_matches: Vec<FingerprintMatch>,
}

/// Detects the watermark in an image file's bytes and finds the token its tag points to; without
/// a watermark, the tokens `fingerprints` holds that look like it.
pub async fn detect_and_find(
    chain: &impl super::TokenChain,
    fingerprints: &impl FingerprintIndex,
    bytes: Vec<u8>,
    from_block: u64,
) -> Result<DetectReport, CopyError> {
    let detected = tokio::task::spawn_blocking(move || decode(&bytes).map(|image| detect(&image)))
        .await
        .map_err(|e| CopyError::NotAnImage(format!("decoding did not finish: {e}")))??;
    let Some(tag) = detected.tag() else {
        let (fingerprint_matches, lookup) = match fingerprints
            .nearest(detected.fingerprint().unwrap_or(0))
            .await
        {
            Ok(matches) if matches.is_empty() => (
                matches,
                format!(
                    "no genmint watermark, and no token's image has a fingerprint within {DHASH_THRESHOLD} bits"
                ),
            ),
            Ok(matches) => {
                let lookup = format!(
                    "no genmint watermark; by fingerprint alone (weaker evidence) the image looks like token {} (dHash distance {}/64)",
                    matches[0].token_id, matches[0].distance
                );
                (matches, lookup)
            }
            Err(e) => (
                Vec::new(),
                format!("no genmint watermark, and the fingerprint index could not be asked: {e}"),
            ),
        };
        return Ok(DetectReport { detected, token: None, lookup, fingerprint_matches });
    };
    let (token, lookup) = match chain.token_by_watermark(tag, from_block).await {
        Ok(Some(token_id)) => {
            let token = TokenRef {
                token_id: alloy::primitives::B256::from(token_id).to_string(),
                chain_id: chain.chain_id(),
                contract: chain.address().to_checksum(None),
            };
            (
                Some(token),
                format!("the mint events of contract {} name this tag's token", token_contract(chain)),
            )
        }
        Ok(None) => (
            None,
            format!(
                "no token minted on contract {} since block {from_block} has tag {tag} (another chain or contract?)",
                token_contract(chain)
            ),
        ),
        Err(e) => (None, format!("the chain could not be searched for tag {tag}: {e}")),
    };
    Ok(DetectReport { detected, token, lookup, fingerprint_matches: Vec::new() })
}

fn token_contract(chain: &impl super::TokenChain) -> String {
    format!("{} on chain {}", chain.address().to_checksum(None), chain.chain_id())
}

/// Looks for the watermark in decoded pixels.
pub fn detect(image: &Rgb8Image) -> Detected {
    // `decode` gives whole pixels, so the only error (a size mismatch) cannot happen here; an
    // image that had one reads as unmarked.
    let found =
        watermark::detect(image).unwrap_or(watermark::Detection { tag: None, confidence: 0.0, scale: 1.0 });
    Detected {
        present: found.tag.is_some(),
        algorithm: watermark::ALGORITHM,
        tag: found.tag.map(|tag| tag.to_string()),
        confidence: (found.confidence * 1000.0).round() / 1000.0,
        scale: found.scale,
        width: image.width,
        height: image.height,
        fingerprint: format!("{:#018x}", dhash(image)),
    }
}

/// The `subject` check of a copy: the pinned image it should be a copy of looks the same.
pub fn likeness(copy: &Rgb8Image, detected: &Detected, pinned: Option<&Rgb8Image>) -> Result<String, String> {
    let pinned = pinned.ok_or("the token's pinned image could not be had to compare the copy with")?;
    let distance = (dhash(copy) ^ dhash(pinned)).count_ones();
    let named_by = match detected.tag.as_deref() {
        Some(tag) => {
            format!("its watermark names this token (tag {tag}, confidence {:.2})", detected.confidence)
        }
        None => "it carries no watermark; the fingerprint index matched it to this token".to_owned(),
    };
    if distance > DHASH_THRESHOLD {
        return Err(format!(
            "{named_by}, but the file does not look like its image: dHash distance {distance}/64 > {DHASH_THRESHOLD}"
        ));
    }
    let strength = if detected.tag.is_some() {
        "which token, creator, prompt, model and node it comes from"
    } else {
        "that it looks like this token's image, so probably which token, creator, prompt, model and node it \
         comes from (a look-alike is weaker evidence than a watermark: different pictures can look alike)"
    };
    Ok(format!(
        "a copy, not the minted file: {named_by} and it looks like the pinned image (dHash distance \
         {distance}/64 ≤ {DHASH_THRESHOLD}). For the copy hold: {strength}. Only the pinned original proves the \
         exact pixels, the file and its C2PA manifest (the checks above are of that original)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_png_jpeg_and_webp_and_refuses_the_rest() {
        let image =
            Rgb8Image { width: 16, height: 8, pixels: (0..16 * 8 * 3).map(|i| (i % 251) as u8).collect() };
        let png = crate::provenance::png::encode(&image).unwrap();
        assert_eq!(decode(&png).unwrap(), image);
        let rgb = image::RgbImage::from_raw(16, 8, image.pixels.clone()).unwrap();
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::WebP] {
            let mut bytes = std::io::Cursor::new(Vec::new());
            rgb.write_to(&mut bytes, format).unwrap();
            let decoded = decode(bytes.get_ref()).unwrap();
            assert_eq!((decoded.width, decoded.height), (16, 8), "{format:?}");
        }
        assert!(matches!(decode(b"GIF89a............"), Err(CopyError::NotAnImage(_))));
        assert!(matches!(decode(b"hello"), Err(CopyError::NotAnImage(_))));
    }

    #[test]
    fn a_jpeg_copy_of_a_marked_image_names_its_tag() {
        let tag =
            WatermarkTag::for_token(31337, alloy::primitives::Address::repeat_byte(1), Default::default());
        let pixels = (0..512 * 512)
            .flat_map(|i: u32| {
                let (x, y) = (i % 512, i / 512);
                let v = (128.0 + 60.0 * (f64::from(x) / 40.0).sin() * (f64::from(y) / 70.0).cos()) as u8;
                [v, v.wrapping_add(20), 255 - v]
            })
            .collect();
        let original = Rgb8Image { width: 512, height: 512, pixels };
        let marked = watermark::embed(&original, tag).unwrap();
        let rgb = image::RgbImage::from_raw(512, 512, marked.pixels.clone()).unwrap();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70).encode_image(&rgb).unwrap();
        let copy = decode(&jpeg).unwrap();
        let found = detect(&copy);
        assert!(found.present, "{found:?}");
        assert_eq!(found.tag(), Some(tag));
        assert!(likeness(&copy, &found, Some(&marked)).is_ok());
        assert!(!detect(&original).present);
        let flipped = Rgb8Image { pixels: marked.pixels.iter().rev().copied().collect(), ..marked.clone() };
        assert!(likeness(&copy, &found, Some(&flipped)).is_err(), "a different picture is not a copy");
    }
}
