//! Evaluation of a text-to-image model against its held-out prompts: the metrics behind
//! `genmint models eval`. Generation itself is the caller's (it owns the model, the timing and
//! the child processes); this module reads the evaluation files and scores images.
//!
//! # Prompt adherence by nearest-neighbour retrieval
//!
//! Each held-out prompt names the concept it asks for. Its generated image is compared with every
//! reference image of `retrieval.bin` (both emoji styles of every concept, the held-out concepts'
//! included, so that unseen concepts can be matched at all) in a fixed feature space: the image box-downsampled to 16×16
//! (each feature the mean of a 2×2 block of one channel), values in [0, 1], squared L2 distance.
//! The prompt scores top-k when its concept is among the concepts of the k nearest reference
//! images (ties broken by file order). The baseline scores each image the same way against the
//! concept of another held-out prompt drawn at random (ChaCha20 seeded with
//! [`BASELINE_SEED`]): what adherence looks like when the image has nothing to do with its
//! prompt.
//!
//! # Files
//!
//! - `heldout.json` (beside the model): `[{"prompt": "...", "concept": 104, "kind": "phrasing" |
//!   "concept", "concept_name": "..."}, ...]`: `phrasing` prompts word a trained concept in
//!   unseen ways, `concept` prompts ask for concepts never trained on.
//! - `retrieval.bin` (written by the training run): records of concept id (u32 little-endian)
//!   followed by 32×32×3 RGB bytes (rows top first, pixels interleaved).
//!
//! # Diversity
//!
//! For one prompt over several seeds: the mean over all pairs of images of their RMS pixel
//! distance (`sqrt(mean((a − b)²))` over every channel value in [0, 1]), and the fraction of
//! distinct pixel digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Deserialize;

use crate::Rgb8Image;

/// Seed of the baseline's random prompt assignment.
pub const BASELINE_SEED: u64 = 0x0067_656e_6d69_6e74;

/// Side of the images in `retrieval.bin` and of the images scored.
pub const IMAGE_SIDE: u32 = 32;

/// Side of the retrieval feature grid.
const FEATURE_SIDE: usize = 16;
const FEATURES: usize = FEATURE_SIDE * FEATURE_SIDE * 3;
const RECORD_BYTES: usize = 4 + (IMAGE_SIDE * IMAGE_SIDE * 3) as usize;

/// Evaluation inputs that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid evaluation file {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("image is {width}x{height}, the evaluation scores {IMAGE_SIDE}x{IMAGE_SIDE} images")]
    ImageSize { width: u32, height: u32 },
}

/// One held-out evaluation prompt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HeldoutPrompt {
    pub prompt: String,
    /// Concept id, as in `retrieval.bin`.
    pub concept: u32,
    /// `phrasing` or `concept`.
    pub kind: String,
    #[serde(default)]
    pub concept_name: String,
}

/// Reads `heldout.json`.
pub fn read_heldout(path: &Path) -> Result<Vec<HeldoutPrompt>, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Read { path: path.to_path_buf(), source })?;
    let prompts: Vec<HeldoutPrompt> = serde_json::from_slice(&bytes)
        .map_err(|e| EvalError::Invalid { path: path.to_path_buf(), reason: e.to_string() })?;
    if prompts.len() < 2 {
        return Err(EvalError::Invalid {
            path: path.to_path_buf(),
            reason: "at least two held-out prompts are needed".into(),
        });
    }
    Ok(prompts)
}

/// The reference images to retrieve from, as features.
pub struct RetrievalSet {
    concepts: Vec<u32>,
    features: Vec<[f32; FEATURES]>,
}

impl RetrievalSet {
    /// Reads `retrieval.bin`.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let bytes =
            std::fs::read(path).map_err(|source| EvalError::Read { path: path.to_path_buf(), source })?;
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
            return Err(EvalError::Invalid {
                path: path.to_path_buf(),
                reason: format!("{} bytes is not a whole number of {RECORD_BYTES}-byte records", bytes.len()),
            });
        }
        let (concepts, features) = bytes
            .chunks_exact(RECORD_BYTES)
            .map(|record| {
                let concept = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
                (concept, features_of(&record[4..]))
            })
            .unzip();
        Ok(Self { concepts, features })
    }

    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    /// Distinct concept ids present.
    pub fn concept_count(&self) -> usize {
        let mut ids = self.concepts.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// The concepts of the `k` reference images nearest to `image`, nearest first.
    pub fn nearest_concepts(&self, image: &Rgb8Image, k: usize) -> Result<Vec<u32>, EvalError> {
        let query = features(image)?;
        let mut distances: Vec<(f32, usize)> = self
            .features
            .iter()
            .enumerate()
            .map(|(index, f)| (f.iter().zip(&query).map(|(a, b)| (a - b) * (a - b)).sum(), index))
            .collect();
        distances.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(distances.iter().take(k).map(|&(_, index)| self.concepts[index]).collect())
    }
}

/// The retrieval features of a 32×32 image (module doc).
pub fn features(image: &Rgb8Image) -> Result<[f32; FEATURES], EvalError> {
    if (image.width, image.height) != (IMAGE_SIDE, IMAGE_SIDE) {
        return Err(EvalError::ImageSize { width: image.width, height: image.height });
    }
    Ok(features_of(&image.pixels))
}

fn features_of(pixels: &[u8]) -> [f32; FEATURES] {
    let side = IMAGE_SIDE as usize;
    let mut out = [0f32; FEATURES];
    for y in 0..FEATURE_SIDE {
        for x in 0..FEATURE_SIDE {
            for channel in 0..3 {
                let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| u32::from(pixels[((2 * y + dy) * side + 2 * x + dx) * 3 + channel]))
                    .sum();
                out[(y * FEATURE_SIDE + x) * 3 + channel] = sum as f32 / (4.0 * 255.0);
            }
        }
    }
    out
}

/// Top-1 and top-5 hit counts over some prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    pub prompts: usize,
    pub top1: usize,
    pub top5: usize,
}

impl Hits {
    fn add(&mut self, nearest: &[u32], concept: u32) {
        self.prompts += 1;
        self.top1 += usize::from(nearest.first() == Some(&concept));
        self.top5 += usize::from(nearest.iter().take(5).any(|&c| c == concept));
    }

    /// `(top-1, top-5)` as fractions of the prompts.
    pub fn rates(&self) -> (f64, f64) {
        let n = self.prompts.max(1) as f64;
        (self.top1 as f64 / n, self.top5 as f64 / n)
    }
}

/// Adherence of one group of prompts and its random-prompt baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adherence {
    pub model: Hits,
    pub baseline: Hits,
}

/// Scores `images[i]`, generated for `prompts[i]`, by retrieval (module doc). Returns the result
/// per prompt kind and, under `"overall"`, for all prompts.
pub fn adherence(
    prompts: &[HeldoutPrompt],
    images: &[Rgb8Image],
    retrieval: &RetrievalSet,
) -> Result<BTreeMap<String, Adherence>, EvalError> {
    let mut rng = ChaCha20Rng::seed_from_u64(BASELINE_SEED);
    let mut groups: BTreeMap<String, Adherence> = BTreeMap::new();
    let n = prompts.len().min(images.len());
    for (index, (prompt, image)) in prompts.iter().zip(images).enumerate() {
        let nearest = retrieval.nearest_concepts(image, 5)?;
        // Another prompt, uniformly among the other n − 1.
        let mut other = (rng.next_u64() % (n as u64 - 1).max(1)) as usize;
        if other >= index {
            other += 1;
        }
        let random_concept = prompts[other.min(n - 1)].concept;
        for group in [prompt.kind.as_str(), "overall"] {
            let entry = groups.entry(group.to_string()).or_default();
            entry.model.add(&nearest, prompt.concept);
            entry.baseline.add(&nearest, random_concept);
        }
    }
    Ok(groups)
}

/// Spread of one prompt's images over seeds (module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diversity {
    /// Mean pairwise RMS pixel distance, in [0, 1].
    pub mean_distance: f64,
    /// Distinct pixel digests over images.
    pub distinct_fraction: f64,
}

pub fn diversity(images: &[Rgb8Image]) -> Diversity {
    let mut total = 0.0;
    let mut pairs = 0usize;
    for (i, a) in images.iter().enumerate() {
        for b in &images[i + 1..] {
            let squared: f64 = a
                .pixels
                .iter()
                .zip(&b.pixels)
                .map(|(&x, &y)| ((f64::from(x) - f64::from(y)) / 255.0).powi(2))
                .sum();
            total += (squared / a.pixels.len().max(1) as f64).sqrt();
            pairs += 1;
        }
    }
    let mut digests: Vec<[u8; 32]> = images.iter().map(Rgb8Image::pixel_digest).collect();
    digests.sort_unstable();
    digests.dedup();
    Diversity {
        mean_distance: if pairs == 0 { 0.0 } else { total / pairs as f64 },
        distinct_fraction: digests.len() as f64 / images.len().max(1) as f64,
    }
}

/// `images` (all the same size) in a grid `columns` wide, each enlarged `scale` times by
/// repeating pixels, on a white background.
pub fn contact_sheet(images: &[Rgb8Image], columns: usize, scale: u32) -> Option<Rgb8Image> {
    let first = images.first()?;
    let (tile_w, tile_h) = (first.width * scale, first.height * scale);
    let columns = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(columns);
    let width = tile_w * columns as u32;
    let height = tile_h * rows as u32;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    for (index, image) in images.iter().enumerate() {
        if (image.width, image.height) != (first.width, first.height) {
            return None;
        }
        let (left, top) = ((index % columns) as u32 * tile_w, (index / columns) as u32 * tile_h);
        for y in 0..tile_h {
            for x in 0..tile_w {
                let from = (((y / scale) * image.width + x / scale) * 3) as usize;
                let to = (((top + y) * width + left + x) * 3) as usize;
                pixels[to..to + 3].copy_from_slice(&image.pixels[from..from + 3]);
            }
        }
    }
    Some(Rgb8Image { width, height, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(rgb: [u8; 3]) -> Rgb8Image {
        Rgb8Image { width: 32, height: 32, pixels: rgb.repeat(32 * 32) }
    }

    fn retrieval(images: &[(u32, Rgb8Image)]) -> RetrievalSet {
        let mut bytes = Vec::new();
        for (concept, image) in images {
            bytes.extend(concept.to_le_bytes());
            bytes.extend(&image.pixels);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retrieval.bin");
        std::fs::write(&path, bytes).unwrap();
        RetrievalSet::read(&path).unwrap()
    }

    fn prompt(concept: u32, kind: &str) -> HeldoutPrompt {
        HeldoutPrompt {
            prompt: format!("p{concept}"),
            concept,
            kind: kind.into(),
            concept_name: String::new(),
        }
    }

    #[test]
    fn features_average_2x2_blocks() {
        let mut image = solid([0, 0, 0]);
        image.pixels[0] = 255; // top-left red
        let f = features(&image).unwrap();
        assert_eq!(f[0], 0.25);
        assert_eq!(f[1..].iter().sum::<f32>(), 0.0);
        assert!(features(&Rgb8Image { width: 2, height: 2, pixels: vec![0; 12] }).is_err());
    }

    #[test]
    fn retrieval_finds_the_matching_concept() {
        let set = retrieval(&[(1, solid([255, 0, 0])), (2, solid([0, 255, 0])), (3, solid([0, 0, 255]))]);
        assert_eq!((set.len(), set.concept_count()), (3, 3));
        assert_eq!(set.nearest_concepts(&solid([250, 10, 0]), 2).unwrap(), [1, 2]);
        let prompts = [prompt(1, "phrasing"), prompt(2, "phrasing"), prompt(3, "concept")];
        let images = [solid([255, 0, 0]), solid([0, 255, 0]), solid([0, 0, 255])];
        let scores = adherence(&prompts, &images, &set).unwrap();
        let overall = scores["overall"];
        assert_eq!(overall.model, Hits { prompts: 3, top1: 3, top5: 3 });
        // Every image is compared with another prompt's (different) concept: never top-1.
        assert_eq!(overall.baseline.top1, 0);
        assert_eq!(overall.baseline.top5, 3, "only three concepts exist, so all are in the top 5");
        assert_eq!(scores["concept"].model.prompts, 1);
        assert_eq!(scores["phrasing"].model.prompts, 2);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.bin"), [0u8; 7]).unwrap();
        assert!(RetrievalSet::read(&dir.path().join("r.bin")).is_err());
    }

    #[test]
    fn diversity_and_contact_sheet() {
        let (black, white) = (solid([0, 0, 0]), solid([255, 255, 255]));
        let d = diversity(&[black.clone(), white.clone(), black.clone()]);
        assert!((d.mean_distance - 2.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!((d.distinct_fraction - 2.0 / 3.0).abs() < 1e-12);
        let sheet = contact_sheet(&[black, white.clone(), white], 2, 2).unwrap();
        assert_eq!((sheet.width, sheet.height), (128, 128));
        assert_eq!(&sheet.pixels[..3], &[0, 0, 0]);
        let right = ((10 * 128 + 64) * 3) as usize;
        assert_eq!(&sheet.pixels[right..right + 3], &[255, 255, 255]);
    }
}
