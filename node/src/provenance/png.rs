//! Deterministic PNG encoding of generated pixels, and decoding back to pixels for verification.
//!
//! The encoder settings are fixed (RGB8, no ancillary chunks, default compression, adaptive
//! filtering as the `png` crate defines it), so the same pixels always give the same bytes and
//! therefore the same CID. Verification never relies on that: it decodes and compares pixel digests.

use genmint_model_runtime::Rgb8Image;

#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] png::EncodingError),
    #[error("not a readable PNG: {0}")]
    Decode(#[from] png::DecodingError),
    #[error("PNG is {0:?}/{1:?}; genmint images are 8-bit RGB")]
    Format(png::ColorType, png::BitDepth),
    #[error("image of {width}x{height} does not match its {len} pixel bytes")]
    Size { width: u32, height: u32, len: usize },
}

/// Encodes RGB8 pixels as PNG bytes.
pub fn encode(image: &Rgb8Image) -> Result<Vec<u8>, PngError> {
    let expected = image.width as usize * image.height as usize * 3;
    if image.pixels.len() != expected {
        return Err(PngError::Size { width: image.width, height: image.height, len: image.pixels.len() });
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Balanced);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.pixels)?;
    writer.finish()?;
    Ok(bytes)
}

/// Decodes PNG bytes into RGB8 pixels (the inverse of [`encode`] for genmint images).
pub fn decode(bytes: &[u8]) -> Result<Rgb8Image, PngError> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let (color, depth) = reader.output_color_type();
    if color != png::ColorType::Rgb || depth != png::BitDepth::Eight {
        return Err(PngError::Format(color, depth));
    }
    let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut pixels)?;
    pixels.truncate(info.buffer_size());
    Ok(Rgb8Image { width: info.width, height: info.height, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient() -> Rgb8Image {
        let (width, height) = (7u32, 5u32);
        let pixels = (0..width * height * 3).map(|i| (i * 37 % 256) as u8).collect();
        Rgb8Image { width, height, pixels }
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let image = gradient();
        let bytes = encode(&image).unwrap();
        assert_eq!(bytes, encode(&image).unwrap());
        assert_eq!(decode(&bytes).unwrap(), image);
    }

    #[test]
    fn refuses_mismatched_sizes_and_garbage() {
        let mut image = gradient();
        image.pixels.pop();
        assert!(matches!(encode(&image), Err(PngError::Size { .. })));
        assert!(decode(b"not a png").is_err());
    }
}
