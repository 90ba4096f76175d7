//! Multi-head scaled dot-product attention without the whole score matrix: each task takes a
//! block of query rows of one image, and for each head in turn multiplies them by every key into
//! a buffer its thread reuses (at most 2 MiB, where the full matrix of one 4,096-token head is
//! 64 MiB), takes the exponentials in place (each row's maximum subtracted; those of
//! [`super::math`]), multiplies by the values and divides each output row by its row's sum.
//! The heads of the `[batch, tokens, heads · width]` projections are copied side by side once;
//! outputs are written where they lie.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, math, on_cpu_f32};

/// Scores a task holds at once (2 MiB of f32): a block's query rows are this many divided by
/// the keys, at least one. Fewer, larger products measured faster than blocks that fit L2.
const BLOCK_SCORES: usize = 512 * 1024;
/// Blocks an image's queries are split into at least, so that short key sequences (the text)
/// still give every thread work.
const MIN_BLOCKS: usize = 16;

/// `softmax(q · kᵀ) · v` per head: `q` `[B, Tq, H · D]` (already scaled), `k` `[B, Tk, H · D]`,
/// `v` `[B, Tk, H · Dv]` → `[B, Tq, H · Dv]`, head `h` being columns `h · D..(h + 1) · D`.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    if on_cpu_f32(q) && on_cpu_f32(k) && on_cpu_f32(v) {
        q.contiguous()?.apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &AttentionOp { heads })
    } else {
        plain(q, k, v, heads)
    }
}

/// The same with candle's ops: the heads split out, the whole score matrix, candle's softmax.
fn plain(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (batch, tokens, _) = q.dims3()?;
    let split = |t: &Tensor| -> candle_core::Result<Tensor> {
        let (_, n, channels) = t.dims3()?;
        t.reshape((batch, n, heads, channels / heads))?.transpose(1, 2)?.contiguous()
    };
    let scores = split(q)?.matmul(&split(k)?.t()?)?;
    let out = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&split(v)?)?;
    out.transpose(1, 2)?.reshape((batch, tokens, ()))
}

struct AttentionOp {
    heads: usize,
}

/// The sizes of one call: images, query and key tokens, heads, a head's key width and value width.
#[derive(Clone, Copy)]
struct Sizes {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    width: usize,
    value_width: usize,
}

impl Sizes {
    fn of(heads: usize, q: &Layout, k: &Layout, v: &Layout) -> candle_core::Result<Self> {
        let (batch, queries, channels) = q.shape().dims3()?;
        let (k_batch, keys, k_channels) = k.shape().dims3()?;
        let (v_batch, v_keys, v_channels) = v.shape().dims3()?;
        if heads == 0
            || batch != k_batch
            || batch != v_batch
            || channels != k_channels
            || keys != v_keys
            || !channels.is_multiple_of(heads)
            || !v_channels.is_multiple_of(heads)
        {
            return Err(candle_core::Error::Msg(format!(
                "attention: queries {:?}, keys {:?} and values {:?} do not fit together in {heads} heads",
                q.dims(),
                k.dims(),
                v.dims()
            )));
        }
        Ok(Self { batch, queries, keys, heads, width: channels / heads, value_width: v_channels / heads })
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "genmint-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Sizes { batch, queries, keys, heads, width, value_width } =
            Sizes::of(self.heads, q_layout, k_layout, v_layout)?;
        let (q, k, v) = (
            contiguous_f32("attention", q, q_layout)?,
            contiguous_f32("attention", k, k_layout)?,
            contiguous_f32("attention", v, v_layout)?,
        );
        let value_channels = heads * value_width;
        let shape = Shape::from((batch, queries, value_channels));
        let mut out = vec![0f32; batch * queries * value_channels];
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), shape));
        }
        // Each head's queries, keys and values side by side: the products read them faster so.
        let q = by_head(q, queries, heads, width);
        let (k, v) = (by_head(k, keys, heads, width), by_head(v, keys, heads, value_width));
        let rows = (BLOCK_SCORES / keys.max(1)).clamp(1, queries.div_ceil(MIN_BLOCKS));
        // The blocks are fixed by the shapes alone, so the thread count never changes a result.
        let blocks: Vec<(usize, usize, &mut [f32])> = out
            .chunks_mut(queries * value_channels)
            .enumerate()
            .flat_map(|(image, image_out)| {
                image_out
                    .chunks_mut(rows * value_channels)
                    .enumerate()
                    .map(move |(i, block)| (image, i * rows, block))
            })
            .collect();
        blocks.into_par_iter().for_each_init(
            || (vec![0f32; rows * keys], vec![0f32; rows]),
            |(scores, sums), (image, first, block)| {
                let n = block.len() / value_channels;
                let (scores, sums) = (&mut scores[..n * keys], &mut sums[..n]);
                for head in 0..heads {
                    let k = &k[(image * heads + head) * keys * width..][..keys * width];
                    let v = &v[(image * heads + head) * keys * value_width..][..keys * value_width];
                    let q = &q[((image * heads + head) * queries + first) * width..][..n * width];
                    let out = &mut block[head * value_width..];
                    // scores = q · kᵀ: kᵀ's column j is key j, one row of k.
                    product(n, keys, width, q, (1, width), k, (width, 1), (scores, keys));
                    exponentiate(scores, keys, sums);
                    product(
                        n,
                        value_width,
                        keys,
                        scores,
                        (1, keys),
                        v,
                        (1, value_width),
                        (out, value_channels),
                    );
                    // The softmax's division, on the output rows rather than the (wider) score rows.
                    for (row, sum) in out.chunks_mut(value_channels).zip(sums.iter()) {
                        let scale = 1.0 / sum;
                        row[..value_width].iter_mut().for_each(|x| *x *= scale);
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), shape))
    }
}

/// `[images, tokens, heads · width]` rearranged as `[images, heads, tokens, width]`.
fn by_head(xs: &[f32], tokens: usize, heads: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; xs.len()];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_exact_mut(tokens * width).enumerate().for_each(|(index, head_out)| {
        let (image, head) = (index / heads, index % heads);
        let image = &xs[image * tokens * heads * width..][..tokens * heads * width];
        for (row, token) in head_out.chunks_exact_mut(width).zip(image.chunks_exact(heads * width)) {
            row.copy_from_slice(&token[head * width..][..width]);
        }
    });
    out
}

/// Each row of `scores` (`keys` wide) replaced by the exponentials of its values less its
/// maximum, their sum written to `sums`: the softmax but its division. With AVX2 where the CPU
/// has it; the bits are the same either way (the same operations per lane, no fused
/// multiply-add).
fn exponentiate(scores: &mut [f32], keys: usize, sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            exponentiate_avx2(scores, keys, sums)
        };
        return;
    }
    exponentiate_rows(scores, keys, sums);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exponentiate_avx2(scores: &mut [f32], keys: usize, sums: &mut [f32]) {
    exponentiate_rows(scores, keys, sums);
}

#[inline(always)]
fn exponentiate_rows(scores: &mut [f32], keys: usize, sums: &mut [f32]) {
    for (row, sum) in scores.chunks_exact_mut(keys).zip(sums.iter_mut()) {
        let max = math::max(row);
        let mut lanes = [0f32; math::LANES];
        let mut chunks = row.chunks_exact_mut(math::LANES);
        for chunk in &mut chunks {
            for (lane, x) in lanes.iter_mut().zip(chunk) {
                *x = math::exp(*x - max);
                *lane += *x;
            }
        }
        let mut rest = 0.0;
        for x in chunks.into_remainder() {
            *x = math::exp(*x - max);
            rest += *x;
        }
        *sum = lanes.iter().sum::<f32>() + rest;
    }
}

/// `out = lhs · rhs` on this thread, `out` `m × n` with rows `out_stride` apart; `lhs` (`m × k`)
/// and `rhs` (`k × n`) are read through their (column, row) strides.
#[allow(clippy::too_many_arguments, unsafe_code)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: &[f32],
    (rhs_cs, rhs_rs): (usize, usize),
    (out, out_stride): (&mut [f32], usize),
) {
    let last =
        |rows: usize, cols: usize, cs: usize, rs: usize| (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs + 1;
    assert!(lhs.len() >= last(m, k, lhs_cs, lhs_rs) && rhs.len() >= last(k, n, rhs_cs, rhs_rs));
    assert!(out.len() >= last(m, n, 1, out_stride));
    // SAFETY: the asserts above keep every index of the three matrices inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{bits, max_diff, sample, with_threads};
    use super::*;

    #[test]
    fn attention_matches_the_plain_ops() {
        // Self-attention long enough to split into blocks (and leave a short last one), cross
        // attention to 77 tokens, one head of another value width, as the UNet and the VAE call it.
        for (batch, queries, keys, heads, width, value_width) in
            [(2, 1500, 1500, 3, 40, 40), (2, 256, 77, 8, 40, 40), (1, 300, 300, 1, 64, 24)]
        {
            let q = (sample(&[batch, queries, heads * width], 1) * 0.4).unwrap();
            let k = sample(&[batch, keys, heads * width], 2);
            let v = sample(&[batch, keys, heads * value_width], 3);
            let fast = attention(&q, &k, &v, heads).unwrap();
            assert_eq!(fast.dims(), &[batch, queries, heads * value_width]);
            let diff = max_diff(&fast, &plain(&q, &k, &v, heads).unwrap());
            assert!(diff < 2e-5, "{batch}x{heads} heads, {queries}x{keys}: {diff}");
        }
    }

    #[test]
    fn attention_bits_do_not_depend_on_the_thread_count() {
        let (q, k, v) = (sample(&[2, 900, 64], 4), sample(&[2, 900, 64], 5), sample(&[2, 900, 64], 6));
        let one = with_threads(1, || bits(&attention(&q, &k, &v, 2).unwrap()));
        assert_eq!(one, with_threads(3, || bits(&attention(&q, &k, &v, 2).unwrap())));
        assert_eq!(one, bits(&attention(&q, &k, &v, 2).unwrap()));
    }

    #[test]
    fn the_avx2_exponentials_are_the_plain_ones() {
        let scores = (sample(&[5, 203], 10) * 6.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (mut fast, mut plain) = (scores.clone(), scores);
        let (mut fast_sums, mut plain_sums) = ([0f32; 5], [0f32; 5]);
        exponentiate(&mut fast, 203, &mut fast_sums);
        exponentiate_rows(&mut plain, 203, &mut plain_sums);
        let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&plain));
        assert_eq!(bits(&fast_sums), bits(&plain_sums));
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let err = attention(&sample(&[2, 10, 8], 1), &sample(&[2, 12, 8], 2), &sample(&[2, 11, 8], 3), 2)
            .unwrap_err();
        assert!(err.to_string().contains("do not fit together"), "{err}");
        assert!(
            attention(&sample(&[1, 4, 6], 1), &sample(&[1, 4, 6], 2), &sample(&[1, 4, 6], 3), 4).is_err()
        );
    }
}
