//! The 3×3, stride-1, padding-1 convolution by Winograd's F(2×2, 3×3): each 2×2 block of output
//! pixels comes from a 4×4 block of input through 16 products instead of 36, so the wide 3×3
//! layers of Stable Diffusion's UNet and VAE (256 channels and more) do 2.25 times fewer
//! multiplications than the gathered matrix product.
//!
//! The weights are transformed once at load (`U = G g Gᵀ`, `[16, c_out, c_in]`). Per call, the
//! input's 4×4 blocks (tiles, overlapping by 2, zero outside the image) are transformed
//! (`V = Bᵀ d B`, `[c_in, 16, tiles]`), one matrix product per transform position ξ gives
//! `M[ξ] = U[ξ] · V[ξ]` (`[c_out, 16, tiles]`), and each output block is `Aᵀ M A` plus the bias.
//! The transforms hold only 0, ±1 and ±½, so the rounding stays close to a direct convolution's.
//! Tiles of every image of the batch are multiplied together, in bands of tile rows that bound the
//! scratch memory; work is split by channel or by transform position, never inside a sum, so the
//! bits do not depend on the thread count.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{Accumulate, contiguous_f32, matmul};

/// Transform positions of a 4×4 tile.
const POSITIONS: usize = 16;

/// Most elements of the transformed input and the products held at once (64 MiB of f32).
const MAX_SCRATCH: usize = 16 << 20;

/// Whether a convolution of this shape runs here: 3×3, stride 1, padding 1, and at least 256
/// channels in and out. Below that the transforms cost more than the products save (measured on
/// one and two threads: 0.5–0.9 of the gathered product's time at 256–1,280 channels, 1.0–3.0 at
/// 32–128 channels on 32×32 to 64×64 planes).
pub(crate) fn applies(c_in: usize, c_out: usize, kernel: usize, padding: usize, stride: usize) -> bool {
    kernel == 3 && padding == 1 && stride == 1 && c_in >= MIN_CHANNELS && c_out >= MIN_CHANNELS
}

/// Fewest input and output channels for which [`applies`] holds.
pub(crate) const MIN_CHANNELS: usize = 256;

/// `U = G g Gᵀ` for every (output, input) channel pair of a `[c_out, c_in, 3, 3]` weight, laid
/// out `[16, c_out, c_in]` (one matrix per transform position).
pub(crate) fn transform_weights(weight: &Tensor) -> candle_core::Result<Tensor> {
    let (c_out, c_in, _, _) = weight.dims4()?;
    let g = weight.flatten_all()?.to_vec1::<f32>()?;
    let mut u = vec![0f32; POSITIONS * c_out * c_in];
    for (pair, g) in g.chunks_exact(9).enumerate() {
        // G g: 4 rows of 3, then (G g) Gᵀ: 4 × 4.
        let mut gg = [[0f32; 3]; 4];
        for col in 0..3 {
            let [a, b, c] = [g[col], g[3 + col], g[6 + col]];
            gg[0][col] = a;
            gg[1][col] = 0.5 * (a + b + c);
            gg[2][col] = 0.5 * (a - b + c);
            gg[3][col] = c;
        }
        for (row, [a, b, c]) in gg.into_iter().enumerate() {
            let values = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (col, value) in values.into_iter().enumerate() {
                u[(row * 4 + col) * c_out * c_in + pair] = value;
            }
        }
    }
    Tensor::from_vec(u, (POSITIONS, c_out, c_in), weight.device())
}

/// The custom op: (input `[B, c_in, H, W]`, transformed weights, bias) → `[B, c_out, H, W]`.
pub(crate) struct WinogradOp {
    /// Most elements of scratch at once ([`MAX_SCRATCH`] but in tests).
    pub max_scratch: usize,
}

impl Default for WinogradOp {
    fn default() -> Self {
        Self { max_scratch: MAX_SCRATCH }
    }
}

/// The sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    c_in: usize,
    c_out: usize,
    height: usize,
    width: usize,
    /// Tile rows and columns of one image (2×2 output pixels each).
    tiles_h: usize,
    tiles_w: usize,
}

impl CustomOp3 for WinogradOp {
    fn name(&self) -> &'static str {
        "genmint-winograd-conv3x3"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_l: &Layout,
        weights: &CpuStorage,
        weights_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, c_in, height, width) = input_l.shape().dims4()?;
        let (positions, c_out, w_in) = weights_l.shape().dims3()?;
        if positions != POSITIONS || w_in != c_in || bias_l.shape().elem_count() != c_out {
            return Err(candle_core::Error::Msg(format!(
                "winograd conv: input {:?} does not fit transformed weights {:?} and bias {:?}",
                input_l.dims(),
                weights_l.dims(),
                bias_l.dims()
            )));
        }
        let input = contiguous_f32("winograd conv", input, input_l)?;
        let weights = contiguous_f32("winograd conv", weights, weights_l)?;
        let bias = contiguous_f32("winograd conv", bias, bias_l)?;
        let d = Dims { c_in, c_out, height, width, tiles_h: height.div_ceil(2), tiles_w: width.div_ceil(2) };
        let mut out = vec![0f32; batch * c_out * height * width];
        let all_rows = batch * d.tiles_h;
        let per_row = POSITIONS * (c_in + c_out) * d.tiles_w;
        let band = (self.max_scratch / per_row.max(1)).clamp(1, all_rows.max(1));
        let mut transformed = vec![0f32; c_in * POSITIONS * band * d.tiles_w];
        let mut products = vec![0f32; c_out * POSITIONS * band * d.tiles_w];
        for first in (0..all_rows).step_by(band) {
            let rows = first..(first + band).min(all_rows);
            let n = rows.len() * d.tiles_w;
            let transformed = &mut transformed[..c_in * POSITIONS * n];
            let products = &mut products[..c_out * POSITIONS * n];
            transform_input(&d, input, rows.clone(), transformed);
            for position in 0..POSITIONS {
                matmul(
                    Accumulate::No,
                    c_out,
                    n,
                    c_in,
                    &weights[position * c_out * c_in..][..c_out * c_in],
                    &transformed[position * n..],
                    POSITIONS * n,
                    &mut products[position * n..],
                    POSITIONS * n,
                );
            }
            transform_output(&d, products, bias, rows, &mut out);
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, c_out, height, width))))
    }
}

/// `V = Bᵀ d B` for every input channel and tile of the tile rows `rows` (numbered across the
/// batch), into `transformed` `[c_in, 16, n]`.
fn transform_input(d: &Dims, input: &[f32], rows: std::ops::Range<usize>, transformed: &mut [f32]) {
    let n = rows.len() * d.tiles_w;
    let plane = d.height * d.width;
    transformed.par_chunks_exact_mut(POSITIONS * n).enumerate().for_each(|(channel, dst)| {
        // One input row with a zero column on each side and zeros past the right edge.
        let padded_w = 2 * d.tiles_w + 2;
        // (columns 0 and past the image stay 0; the others are written for every tile row.)
        let mut padded = vec![[0f32; 4]; padded_w];
        let mut across = vec![[0f32; 4]; 4 * d.tiles_w];
        for (band_row, row) in rows.clone().enumerate() {
            let (image, tile_y) = (row / d.tiles_h, row % d.tiles_h);
            let source = &input[(image * d.c_in + channel) * plane..][..plane];
            // The 4 input rows of this tile row (2·tile_y − 1 ..= 2·tile_y + 2), padded.
            #[allow(clippy::needless_range_loop)] // dy indexes each column's 4 rows
            for dy in 0..4 {
                let y = (2 * tile_y + dy) as isize - 1;
                let inside = y >= 0 && (y as usize) < d.height;
                for x in 0..d.width {
                    padded[x + 1][dy] = if inside { source[y as usize * d.width + x] } else { 0.0 };
                }
            }
            // Across each row: h = row · B (per tile, 4 values from columns 2·tx − 1 ..= 2·tx + 2).
            for tile_x in 0..d.tiles_w {
                let x = 2 * tile_x;
                for dy in 0..4 {
                    let [p0, p1, p2, p3] =
                        [padded[x][dy], padded[x + 1][dy], padded[x + 2][dy], padded[x + 3][dy]];
                    across[dy * d.tiles_w + tile_x] = [p0 - p2, p1 + p2, p2 - p1, p1 - p3];
                }
            }
            // Down the columns: Bᵀ · h, written to each transform position's row.
            let offset = band_row * d.tiles_w;
            for tile_x in 0..d.tiles_w {
                let h = |dy: usize| across[dy * d.tiles_w + tile_x];
                let (h0, h1, h2, h3) = (h(0), h(1), h(2), h(3));
                for col in 0..4 {
                    let v = [h0[col] - h2[col], h1[col] + h2[col], h2[col] - h1[col], h1[col] - h3[col]];
                    for (row_of_tile, value) in v.into_iter().enumerate() {
                        dst[(row_of_tile * 4 + col) * n + offset + tile_x] = value;
                    }
                }
            }
        }
    });
}

/// `Y = Aᵀ M A` plus the bias for every output channel and tile of `rows`, into `out`
/// `[B, c_out, H, W]` (pixels past an odd edge are dropped).
fn transform_output(d: &Dims, products: &[f32], bias: &[f32], rows: std::ops::Range<usize>, out: &mut [f32]) {
    let n = rows.len() * d.tiles_w;
    let plane = d.height * d.width;
    out.par_chunks_exact_mut(plane).enumerate().for_each(|(image_channel, dst)| {
        let (image, channel) = (image_channel / d.c_out, image_channel % d.c_out);
        let m = &products[channel * POSITIONS * n..][..POSITIONS * n];
        for (band_row, row) in rows.clone().enumerate() {
            if row / d.tiles_h != image {
                continue;
            }
            let tile_y = row % d.tiles_h;
            for tile_x in 0..d.tiles_w {
                let at = |position: usize| m[position * n + band_row * d.tiles_w + tile_x];
                // Aᵀ M: 2 rows of 4.
                let top: [f32; 4] = std::array::from_fn(|col| at(col) + at(4 + col) + at(8 + col));
                let bottom: [f32; 4] = std::array::from_fn(|col| at(4 + col) - at(8 + col) - at(12 + col));
                let s = [top, bottom];
                for (dy, [a, b, c, e]) in s.into_iter().enumerate() {
                    let y = 2 * tile_y + dy;
                    if y >= d.height {
                        continue;
                    }
                    let x = 2 * tile_x;
                    dst[y * d.width + x] = bias[channel] + (a + b + c);
                    if x + 1 < d.width {
                        dst[y * d.width + x + 1] = bias[channel] + (b - c - e);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use candle_core::Module;

    use super::super::conv::ConvGeometry;
    use super::super::conv::tests::conv;
    use super::super::test_support::{bits, max_diff, sample, with_threads};
    use super::*;

    /// candle's convolution of `xs` plus the bias.
    fn reference(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
        xs.conv2d(weight, 1, 1, 1, 1).unwrap().broadcast_add(&bias.reshape((1, (), 1, 1)).unwrap()).unwrap()
    }

    #[test]
    fn winograd_matches_candles_convolution_on_even_and_odd_sides() {
        for (batch, c_in, h, w, c_out) in
            [(2, 16, 8, 8, 24), (1, 32, 9, 7, 16), (2, 16, 1, 5, 8), (1, 64, 32, 32, 32), (2, 256, 6, 5, 256)]
        {
            let (_, weight, bias) = conv(c_in, c_out, 3, ConvGeometry::same(3));
            let transformed = transform_weights(&weight).unwrap();
            let xs = sample(&[batch, c_in, h, w], 3);
            let out = xs.apply_op3_no_bwd(&transformed, &bias, &WinogradOp::default()).unwrap();
            let diff = max_diff(&out, &reference(&xs, &weight, &bias));
            assert!(diff < 1e-4, "case {:?}: {diff}", (batch, c_in, h, w, c_out));
        }
    }

    #[test]
    fn only_wide_layers_take_winograd() {
        let layer = |c_in, c_out| conv(c_in, c_out, 3, ConvGeometry::same(3)).0;
        assert!(layer(MIN_CHANNELS, MIN_CHANNELS).forward(&sample(&[1, MIN_CHANNELS, 4, 4], 2)).is_ok());
        assert!(layer(MIN_CHANNELS, MIN_CHANNELS).takes_winograd());
        assert!(!layer(MIN_CHANNELS, 128).takes_winograd());
        assert!(!layer(128, MIN_CHANNELS).takes_winograd());
        assert!(
            !conv(MIN_CHANNELS, MIN_CHANNELS, 3, ConvGeometry { padding: 1, stride: 2 }).0.takes_winograd()
        );
    }

    #[test]
    fn winograd_gives_the_same_bits_on_any_thread_count_and_bands_agree() {
        let (_, weight, bias) = conv(32, 24, 3, ConvGeometry::same(3));
        let transformed = transform_weights(&weight).unwrap();
        let xs = sample(&[2, 32, 14, 10], 5);
        let run =
            |max_scratch| xs.apply_op3_no_bwd(&transformed, &bias, &WinogradOp { max_scratch }).unwrap();
        let one = with_threads(1, || run(MAX_SCRATCH));
        assert!(with_threads(3, || bits(&run(MAX_SCRATCH))) == bits(&one), "3 threads differ from 1");
        // Bands of 1 tile row and of 3 (across the two images, the last one shorter).
        let per_row = POSITIONS * (32 + 24) * 5;
        assert!(max_diff(&run(per_row), &one) < 1e-4);
        assert!(max_diff(&run(3 * per_row), &one) < 1e-4);
        assert!(max_diff(&reference(&xs, &weight, &bias), &one) < 1e-4);
    }

    #[test]
    fn winograd_refuses_weights_that_do_not_fit() {
        let (_, weight, bias) = conv(16, 8, 3, ConvGeometry::same(3));
        let transformed = transform_weights(&weight).unwrap();
        let error = sample(&[1, 8, 4, 4], 1)
            .apply_op3_no_bwd(&transformed, &bias, &WinogradOp::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not fit"), "{error}");
    }
}
