//! The generated picture: RGB8 pixels, their digest, and the one deterministic conversion from the
//! VAE's floating-point output to bytes.

use sha2::{Digest, Sha256};

use crate::RuntimeError;

/// An image as rows of `RGB` byte triples, top row first, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8Image {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Rgb8Image {
    /// `sha256(width u32 BE ‖ height u32 BE ‖ RGB8 pixels)`: the pixel digest recorded on chain,
    /// independent of any file encoding.
    pub fn pixel_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.width.to_be_bytes());
        hasher.update(self.height.to_be_bytes());
        hasher.update(&self.pixels);
        hasher.finalize().into()
    }

    /// Converts planar decoder output (`[3, height, width]`, nominally in `[-1, 1]`) to RGB8.
    ///
    /// Each value `v` becomes `round(clamp(v / 2 + 0.5, 0, 1) * 255)`, computed in f32 with
    /// rounding half away from zero; every step is a single IEEE operation, so the bytes depend
    /// only on the input values. Non-finite input is an error rather than a silent black pixel.
    pub(crate) fn from_planar(width: u32, height: u32, planes: &[f32]) -> Result<Self, RuntimeError> {
        let plane = width as usize * height as usize;
        if planes.len() != 3 * plane {
            return Err(RuntimeError::Inference(candle_core::Error::Msg(format!(
                "decoder returned {} values for a {width}x{height} RGB image",
                planes.len()
            ))));
        }
        let mut pixels = Vec::with_capacity(3 * plane);
        for index in 0..plane {
            for channel in 0..3 {
                let value = planes[channel * plane + index];
                if !value.is_finite() {
                    return Err(RuntimeError::NonFinite);
                }
                let unit = (value / 2.0 + 0.5).clamp(0.0, 1.0);
                // In 0..=255 after the clamp, so the cast cannot truncate.
                pixels.push((unit * 255.0).round() as u8);
            }
        }
        Ok(Self { width, height, pixels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_digest_is_sha256_of_be_dimensions_and_pixels() {
        let image = Rgb8Image { width: 2, height: 1, pixels: vec![0x00, 0x80, 0xff, 0x0a, 0x0b, 0x0c] };
        // printf '\x00\x00\x00\x02\x00\x00\x00\x01\x00\x80\xff\x0a\x0b\x0c' | sha256sum
        assert_eq!(
            hex::encode(image.pixel_digest()),
            "91612bc0adf01dd3ee50f0ed8c60f53c0f56a34bb1a819e64def4f16850410d8"
        );
    }

    #[test]
    fn planar_output_is_interleaved_clamped_and_rounded() {
        // 2x1 image: red plane, green plane, blue plane.
        let planes = [-1.0, 1.0, 0.0, 3.0, -7.0, 0.001];
        let image = Rgb8Image::from_planar(2, 1, &planes).unwrap();
        // 0.0 -> 127.5 rounds away from zero to 128; 0.001 -> 127.6275 -> 128.
        assert_eq!(image.pixels, vec![0, 128, 0, 255, 255, 128]);
    }

    #[test]
    fn non_finite_output_is_an_error() {
        let planes = [0.0, f32::NAN, 0.0];
        assert!(matches!(Rgb8Image::from_planar(1, 1, &planes), Err(RuntimeError::NonFinite)));
        assert!(Rgb8Image::from_planar(1, 1, &planes[..2]).is_err());
    }
}
