//! The perceptual fingerprint of an image: a 64-bit difference hash (dHash) of its luma. Images
//! that look alike (a re-encoded or resized copy, a re-generation on another device) differ in few
//! bits; different pictures in about half. Spot checks and re-generation compare with it, copies
//! are matched with it, and the C2PA manifest declares it as a soft binding.

use genmint_model_runtime::Rgb8Image;

/// 64-bit difference hash: luma box-averaged onto a 9x8 grid; bit i is set when a cell is brighter
/// than its right neighbour.
pub fn dhash(image: &Rgb8Image) -> u64 {
    const W: usize = 9;
    const H: usize = 8;
    let (width, height) = (image.width as usize, image.height as usize);
    let mut cells = [[0f64; W]; H];
    for (y, row) in cells.iter_mut().enumerate() {
        for (x, cell) in row.iter_mut().enumerate() {
            let (x0, x1) = (x * width / W, ((x + 1) * width / W).max(x * width / W + 1).min(width));
            let (y0, y1) = (y * height / H, ((y + 1) * height / H).max(y * height / H + 1).min(height));
            let mut sum = 0.0;
            for py in y0..y1 {
                for px in x0..x1 {
                    let i = (py * width + px) * 3;
                    let [r, g, b] =
                        [image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]].map(f64::from);
                    sum += 0.299 * r + 0.587 * g + 0.114 * b;
                }
            }
            *cell = sum / ((x1 - x0) * (y1 - y0)).max(1) as f64;
        }
    }
    let mut hash = 0u64;
    for (y, row) in cells.iter().enumerate() {
        for x in 0..W - 1 {
            if row[x] > row[x + 1] {
                hash |= 1 << (y * (W - 1) + x);
            }
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32, flip: bool) -> Rgb8Image {
        let pixels = (0..height)
            .flat_map(|_| {
                (0..width).flat_map(move |x| {
                    let v = (x * 255 / (width - 1)) as u8;
                    let v = if flip { 255 - v } else { v };
                    [v, v, v]
                })
            })
            .collect();
        Rgb8Image { width, height, pixels }
    }

    #[test]
    fn dhash_tells_similar_from_different_images() {
        let a = gradient(32, 32, false);
        let mut noisy = a.clone();
        noisy.pixels.iter_mut().step_by(7).for_each(|p| *p = p.saturating_add(3));
        assert!((dhash(&a) ^ dhash(&noisy)).count_ones() <= 10);
        assert_eq!((dhash(&a) ^ dhash(&gradient(32, 32, true))).count_ones(), 64);
        assert_eq!(dhash(&gradient(4, 4, false)), dhash(&gradient(4, 4, false)), "tiny images work too");
    }
}
