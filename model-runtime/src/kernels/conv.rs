//! 2-D convolution as diffusers' `nn.Conv2d` (square kernel, zero padding, groups 1). On the CPU
//! in f32 each image is gathered into a matrix whose rows are the input channels shifted by one
//! kernel tap (`[c_in · k · k, out_h · out_w]`, copied row segment by row segment), and one matrix
//! product with the weights `[c_out, c_in · k · k]` writes the NCHW output directly, on top of
//! the bias. 1×1 convolutions skip the gather; 3×3 convolutions that keep the sides and have at
//! least 256 channels in and out run by Winograd's method instead ([`winograd`]), their weights
//! transformed once at load.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::winograd::{self, WinogradOp};
use super::{Accumulate, contiguous_f32, matmul, on_cpu_f32};

/// Most elements of the gathered matrix held at once: larger outputs are gathered in bands of
/// output rows (64 MiB of f32).
const MAX_GATHERED: usize = 16 << 20;

thread_local! {
    /// The gathered matrix, kept between convolutions on the same thread (every element is
    /// written before it is read).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Padding and stride of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub padding: usize,
    pub stride: usize,
}

impl ConvGeometry {
    /// A stride-1 convolution that keeps the sides (padding `kernel / 2`).
    pub fn same(kernel: usize) -> Self {
        Self { padding: kernel / 2, stride: 1 }
    }
}

/// A convolution layer: `weight` `[c_out, c_in, k, k]`, `bias` `[c_out]`.
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    weights: Weights,
    bias: Tensor,
    geometry: ConvGeometry,
}

/// The weights in the form the layer's kernel reads.
#[derive(Debug, Clone)]
enum Weights {
    /// `[c_out, c_in, k, k]`, for the gathered product and candle's convolution.
    Plain(Tensor),
    /// Winograd-transformed, `[16, c_out, c_in]` (f32 on the CPU only).
    Winograd(Tensor),
}

impl Conv2d {
    /// Reads `weight` and `bias` under `vb`.
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        geometry: ConvGeometry,
    ) -> candle_core::Result<Self> {
        let weight = vb.get((out_channels, in_channels, kernel, kernel), "weight")?.contiguous()?;
        let bias = vb.get(out_channels, "bias")?.contiguous()?;
        let ConvGeometry { padding, stride } = geometry;
        let weights =
            if on_cpu_f32(&weight) && winograd::applies(in_channels, out_channels, kernel, padding, stride) {
                Weights::Winograd(winograd::transform_weights(&weight)?)
            } else {
                Weights::Plain(weight)
            };
        Ok(Self { weights, bias, geometry })
    }

    /// Whether the layer runs by Winograd's method.
    #[cfg(test)]
    pub(in crate::kernels) fn takes_winograd(&self) -> bool {
        matches!(self.weights, Weights::Winograd(_))
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match &self.weights {
            Weights::Winograd(weights) if on_cpu_f32(xs) => {
                xs.contiguous()?.apply_op3_no_bwd(weights, &self.bias, &WinogradOp::default())
            }
            Weights::Winograd(_) => Err(candle_core::Error::Msg(format!(
                "conv2d: the layer was loaded for f32 on the CPU but got {:?} on {:?}; load the model \
                 with the dtype and device it runs on",
                xs.dtype(),
                xs.device()
            ))),
            Weights::Plain(weight) if on_cpu_f32(xs) && on_cpu_f32(weight) => {
                xs.contiguous()?.apply_op3_no_bwd(
                    weight,
                    &self.bias,
                    &ConvOp { geometry: self.geometry, max_gathered: MAX_GATHERED },
                )
            }
            Weights::Plain(weight) => plain(xs, weight, &self.bias, self.geometry),
        }
    }
}

/// candle's own convolution, for other devices and element types (and the tests).
fn plain(xs: &Tensor, weight: &Tensor, bias: &Tensor, geometry: ConvGeometry) -> candle_core::Result<Tensor> {
    let ConvGeometry { padding, stride } = geometry;
    let out = xs.conv2d(weight, padding, stride, 1, 1)?;
    out.broadcast_add(&bias.reshape((1, (), 1, 1))?)
}

/// The custom op: (input, weight, bias) → output.
struct ConvOp {
    geometry: ConvGeometry,
    /// Most elements of the gathered matrix at once ([`MAX_GATHERED`] but in tests).
    max_gathered: usize,
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    c_in: usize,
    in_h: usize,
    in_w: usize,
    c_out: usize,
    kernel: usize,
    out_h: usize,
    out_w: usize,
}

impl ConvOp {
    fn dims(&self, input: &Layout, weight: &Layout) -> candle_core::Result<Dims> {
        let (batch, c_in, in_h, in_w) = input.shape().dims4()?;
        let (c_out, w_in, k_h, k_w) = weight.shape().dims4()?;
        let ConvGeometry { padding, stride } = self.geometry;
        if w_in != c_in || k_h != k_w || stride == 0 || in_h + 2 * padding < k_h || in_w + 2 * padding < k_w {
            return Err(candle_core::Error::Msg(format!(
                "conv2d: input {:?} does not fit weights {:?} with padding {padding}, stride {stride}",
                input.dims(),
                weight.dims()
            )));
        }
        let out = |side: usize| (side + 2 * padding - k_h) / stride + 1;
        Ok(Dims { batch, c_in, in_h, in_w, c_out, kernel: k_h, out_h: out(in_h), out_w: out(in_w) })
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "genmint-conv2d"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_l: &Layout,
        weight: &CpuStorage,
        weight_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims(input_l, weight_l)?;
        let input = contiguous_f32("conv2d", input, input_l)?;
        let weight = contiguous_f32("conv2d", weight, weight_l)?;
        let bias = contiguous_f32("conv2d", bias, bias_l)?;
        if bias.len() != d.c_out {
            return Err(candle_core::Error::Msg(format!(
                "conv2d: {} biases for {} outputs",
                bias.len(),
                d.c_out
            )));
        }
        let plane = d.out_h * d.out_w;
        // Every output channel starts as its bias; the matrix product adds onto it.
        let mut out = Vec::with_capacity(d.batch * d.c_out * plane);
        for _ in 0..d.batch {
            bias.iter().for_each(|&b| out.extend(std::iter::repeat_n(b, plane)));
        }
        for (image, out) in
            input.chunks_exact(d.c_in * d.in_h * d.in_w).zip(out.chunks_exact_mut(d.c_out * plane))
        {
            self.image(&d, image, weight, out);
        }
        Ok((CpuStorage::F32(out), Shape::from((d.batch, d.c_out, d.out_h, d.out_w))))
    }
}

impl ConvOp {
    /// Adds one image's convolution to `out` `[c_out, out_h · out_w]`, which holds the bias.
    fn image(&self, d: &Dims, image: &[f32], weight: &[f32], out: &mut [f32]) {
        let plane = d.out_h * d.out_w;
        let taps = d.c_in * d.kernel * d.kernel;
        if d.kernel == 1 && self.geometry == (ConvGeometry { padding: 0, stride: 1 }) {
            matmul(Accumulate::Yes, d.c_out, plane, taps, weight, image, plane, out, plane);
            return;
        }
        let band = (self.max_gathered / (taps * d.out_w)).clamp(1, d.out_h);
        SCRATCH.with(|scratch| {
            // A nested convolution on this thread (rayon may run one while this one waits) gets
            // its own buffer.
            let mut own = Vec::new();
            let mut borrowed = scratch.try_borrow_mut();
            let gathered = borrowed.as_deref_mut().unwrap_or(&mut own);
            if gathered.len() < taps * band * d.out_w {
                gathered.resize(taps * band * d.out_w, 0.0);
            }
            self.bands(d, image, weight, out, band, gathered);
        });
    }

    /// Gathers and multiplies `band` output rows at a time.
    fn bands(
        &self,
        d: &Dims,
        image: &[f32],
        weight: &[f32],
        out: &mut [f32],
        band: usize,
        gathered: &mut [f32],
    ) {
        let (plane, taps) = (d.out_h * d.out_w, d.c_in * d.kernel * d.kernel);
        for first_row in (0..d.out_h).step_by(band) {
            let rows = band.min(d.out_h - first_row);
            let columns = rows * d.out_w;
            let gathered = &mut gathered[..taps * columns];
            gathered.par_chunks_exact_mut(columns).enumerate().for_each(|(tap, row)| {
                self.gather_tap(d, image, tap, first_row, row);
            });
            let out = &mut out[first_row * d.out_w..];
            matmul(Accumulate::Yes, d.c_out, columns, taps, weight, gathered, columns, out, plane);
        }
    }

    /// Row `tap` (input channel, kernel row, kernel column) of the gathered matrix for output
    /// rows `first_row..`: the input pixel each output pixel sees through that tap, 0 in the
    /// padding.
    fn gather_tap(&self, d: &Dims, image: &[f32], tap: usize, first_row: usize, dst: &mut [f32]) {
        let ConvGeometry { padding, stride } = self.geometry;
        let (channel, ky, kx) = (tap / (d.kernel * d.kernel), tap / d.kernel % d.kernel, tap % d.kernel);
        let channel = &image[channel * d.in_h * d.in_w..][..d.in_h * d.in_w];
        // Output columns whose input column `ox · stride + kx − padding` lies inside the image.
        let first_x = padding.saturating_sub(kx).div_ceil(stride).min(d.out_w);
        let end_x = (d.in_w + padding).saturating_sub(kx).div_ceil(stride).clamp(first_x, d.out_w);
        for (row, dst) in dst.chunks_exact_mut(d.out_w).enumerate() {
            let iy = ((first_row + row) * stride + ky) as isize - padding as isize;
            if iy < 0 || iy >= d.in_h as isize {
                dst.fill(0.0);
                continue;
            }
            let src = &channel[iy as usize * d.in_w..][..d.in_w];
            dst[..first_x].fill(0.0);
            dst[end_x..].fill(0.0);
            if first_x == end_x {
                continue;
            }
            let start = first_x * stride + kx - padding;
            if stride == 1 {
                dst[first_x..end_x].copy_from_slice(&src[start..start + end_x - first_x]);
            } else {
                for (value, ix) in dst[first_x..end_x].iter_mut().zip((start..).step_by(stride)) {
                    *value = src[ix];
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use candle_core::{Device, Module};
    use candle_nn::VarBuilder;

    use super::super::test_support::{bits, max_diff, sample, with_threads};
    use super::*;

    /// A layer with reproducible weights, and its weight and bias for the reference.
    pub(in crate::kernels) fn conv(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geometry: ConvGeometry,
    ) -> (Conv2d, Tensor, Tensor) {
        let weight = (sample(&[c_out, c_in, kernel, kernel], 7) * 0.2).unwrap();
        let bias = sample(&[c_out], 8);
        let vb = VarBuilder::from_tensors(
            [("weight".to_string(), weight.clone()), ("bias".to_string(), bias.clone())].into(),
            candle_core::DType::F32,
            &Device::Cpu,
        );
        (Conv2d::load(vb, c_in, c_out, kernel, geometry).unwrap(), weight, bias)
    }

    #[test]
    fn conv2d_matches_candles_convolution() {
        let cases = [
            // (batch, c_in, h, w, c_out, kernel, padding, stride)
            (2, 3, 32, 32, 32, 3, 1, 1),
            (2, 8, 9, 7, 16, 3, 1, 1),
            (1, 8, 16, 16, 8, 3, 1, 2),
            (2, 8, 15, 13, 4, 3, 1, 2),
            (2, 16, 8, 8, 24, 1, 0, 1),
            (1, 4, 6, 6, 4, 3, 0, 1),
            (1, 4, 5, 5, 4, 5, 2, 1),
        ];
        for (batch, c_in, h, w, c_out, kernel, padding, stride) in cases {
            let geometry = ConvGeometry { padding, stride };
            let (layer, weight, bias) = conv(c_in, c_out, kernel, geometry);
            assert!(!layer.takes_winograd(), "these shapes take the gathered product");
            let xs = sample(&[batch, c_in, h, w], 3);
            let diff = max_diff(&layer.forward(&xs).unwrap(), &plain(&xs, &weight, &bias, geometry).unwrap());
            assert!(diff < 1e-4, "case {:?}: {diff}", (batch, c_in, h, w, c_out, kernel, padding, stride));
        }
    }

    #[test]
    fn conv2d_gives_the_same_bits_on_any_thread_count_and_bands_agree() {
        let geometry = ConvGeometry::same(3);
        let (_, weight, bias) = conv(64, 32, 3, geometry);
        let xs = sample(&[2, 64, 40, 24], 5);
        let run =
            |max_gathered| xs.apply_op3_no_bwd(&weight, &bias, &ConvOp { geometry, max_gathered }).unwrap();
        let one = with_threads(1, || run(MAX_GATHERED));
        assert!(with_threads(3, || bits(&run(MAX_GATHERED))) == bits(&one), "3 threads differ from 1");
        // Bands of 1 and of 7 output rows (the last one shorter): the matrix kernel blocks the
        // sums by the band's width, so the last bits may differ, never more.
        assert!(max_diff(&run(64 * 9 * 24), &one) < 1e-4);
        assert!(max_diff(&run(7 * 64 * 9 * 24), &one) < 1e-4);
        assert!(max_diff(&plain(&xs, &weight, &bias, geometry).unwrap(), &one) < 1e-4);
    }

    #[test]
    fn conv2d_takes_strided_input() {
        for (c_in, c_out) in [(4, 4), (256, 256)] {
            let (layer, weight, bias) = conv(c_in, c_out, 3, ConvGeometry::same(3));
            let xs = sample(&[1, c_in, 8, 6], 9).transpose(2, 3).unwrap();
            let reference = plain(&xs, &weight, &bias, ConvGeometry::same(3)).unwrap();
            assert!(max_diff(&layer.forward(&xs).unwrap(), &reference) < 1e-4);
        }
    }

    #[test]
    fn a_winograd_layer_refuses_other_dtypes_with_a_clear_error() {
        let (layer, _, _) = conv(256, 256, 3, ConvGeometry::same(3));
        assert!(layer.takes_winograd());
        let xs = sample(&[1, 256, 4, 4], 1).to_dtype(candle_core::DType::F16).unwrap();
        let error = layer.forward(&xs).unwrap_err().to_string();
        assert!(error.contains("loaded for f32 on the CPU"), "{error}");
    }
}
