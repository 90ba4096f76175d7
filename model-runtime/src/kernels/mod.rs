//! Fast CPU kernels for the layers that dominate a diffusion UNet, as candle custom ops: the
//! convolution ([`Conv2d`]: one gather of shifted rows, then one matrix product that writes the
//! output in place; 3×3 layers by Winograd's method), group normalisation with the SiLU that
//! follows it fused in ([`GroupNorm`]), GEGLU ([`geglu`]) and attention ([`attention`]: block by
//! block, never the whole score matrix), the last three over branch-free `exp` and `erf`
//! ([`math`]) that compile to SIMD code. Each layer runs candle's own ops on any other device or
//! element type, and those plain ops are what the kernels are tested against.
//!
//! Every kernel splits its work among the threads of the current rayon pool by output rows or
//! groups, never inside a sum, so the results do not depend on the thread count.

mod add;
mod attention;
mod conv;
mod geglu;
mod linear;
mod math;
mod norm;
mod winograd;

pub(crate) use add::add;
pub(crate) use attention::attention;
pub(crate) use conv::{Conv2d, ConvGeometry};
pub(crate) use geglu::geglu;
pub(crate) use linear::{Linear, linear, linear_no_bias};
pub(crate) use norm::GroupNorm;

use candle_core::{CpuStorage, DType, Device, Layout, Tensor};

/// The arithmetic of these kernels, as recorded in a token's reproducibility envelope: raised
/// whenever a change here can change a picture's bits (1 was candle's own blocks; 3 computes
/// attention block by block; 4 runs 3×3 convolutions of 256 channels and more by Winograd's
/// F(2×2, 3×3)).
pub(crate) const KERNELS_VERSION: u32 = 4;

/// Whether `xs` is a tensor the CPU kernels take: f32 on the CPU.
fn on_cpu_f32(xs: &Tensor) -> bool {
    matches!(xs.device(), Device::Cpu) && xs.dtype() == DType::F32
}

/// The f32 elements of a contiguous tensor's storage, or an error naming the kernel.
fn contiguous_f32<'a>(
    kernel: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{kernel}: the input must be contiguous")))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Whether a matrix product adds onto its output or overwrites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accumulate {
    Yes,
    No,
}

/// `out[m, n] (+)= lhs[m, k] · rhs[k, n]` with `lhs` contiguous; `rhs` and `out` rows are
/// `rhs_stride` and `out_stride` apart. Threads split the output, never a sum.
#[allow(clippy::too_many_arguments, unsafe_code)]
fn matmul(
    accumulate: Accumulate,
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    rhs: &[f32],
    rhs_stride: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(lhs.len() >= m * k && rhs.len() >= (k.max(1) - 1) * rhs_stride + n);
    assert!(out.len() >= (m.max(1) - 1) * out_stride + n);
    let (read_out, alpha) = match accumulate {
        Accumulate::Yes => (true, 1.0),
        Accumulate::No => (false, 0.0),
    };
    // SAFETY: the asserts above keep every index of the three matrices inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            read_out,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            rhs_stride as isize,
            alpha,
            1.0,
            false,
            false,
            false,
            gemm_parallelism(),
        );
    }
}

/// The rayon pool's thread count as the matrix kernels want it.
fn gemm_parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

#[cfg(test)]
mod test_support {
    use candle_core::{Device, Tensor};

    /// A reproducible tensor of `shape` with values in about [-2, 2].
    pub fn sample(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// The largest absolute difference between two tensors of the same shape.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// `f` run on a rayon pool of `threads` threads.
    pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    /// The bits of every element, to compare results exactly.
    pub fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }
}
