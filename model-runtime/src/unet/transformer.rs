//! The attention parts of a UNet level, as diffusers builds them: `Transformer2DModel` (group
//! norm, a projection into tokens, transformer blocks, the projection back, the input added)
//! whose `BasicTransformerBlock`s run self-attention, cross-attention to the text and a GEGLU
//! feed-forward, each after a layer norm and added back.

use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use crate::kernels::{
    Conv2d, ConvGeometry, GroupNorm, Linear, add, attention, geglu, linear, linear_no_bias,
};

/// The shape of one `Transformer2DModel`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransformerSpec {
    pub channels: usize,
    pub heads: usize,
    pub depth: usize,
    pub context_dim: usize,
    pub groups: usize,
    /// Linear projections in and out (SD 2, SDXL) instead of 1×1 convolutions (SD 1).
    pub linear_projection: bool,
}

/// In or out of token space: a 1×1 convolution on the image or a linear layer on the tokens.
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// diffusers' `Transformer2DModel` for continuous input.
pub(crate) struct Transformer2d {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl Transformer2d {
    pub fn load(vb: VarBuilder, spec: TransformerSpec) -> candle_core::Result<Self> {
        let c = spec.channels;
        let projection = |vb: VarBuilder| -> candle_core::Result<Projection> {
            Ok(if spec.linear_projection {
                Projection::Linear(linear(c, c, vb)?)
            } else {
                Projection::Conv(Conv2d::load(vb, c, c, 1, ConvGeometry::same(1))?)
            })
        };
        let blocks = (0..spec.depth)
            .map(|i| TransformerBlock::load(vb.pp("transformer_blocks").pp(i.to_string()), spec))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            norm: GroupNorm::load(vb.pp("norm"), spec.groups, c, 1e-6)?,
            proj_in: projection(vb.pp("proj_in"))?,
            blocks,
            proj_out: projection(vb.pp("proj_out"))?,
        })
    }

    /// `xs` `[batch, C, h, w]` attending to `context` `[batch, tokens, context_dim]`.
    pub fn forward(&self, xs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, channels, height, width) = xs.dims4()?;
        let to_tokens =
            |image: &Tensor| image.permute((0, 2, 3, 1))?.reshape((batch, height * width, channels));
        let to_image = |tokens: &Tensor| {
            tokens.reshape((batch, height, width, channels))?.permute((0, 3, 1, 2))?.contiguous()
        };
        let normed = self.norm.forward(xs)?;
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(&conv.forward(&normed)?)?,
            Projection::Linear(linear) => linear.forward(&to_tokens(&normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_image(&tokens)?)?,
            Projection::Linear(linear) => to_image(&linear.forward(&tokens)?)?,
        };
        add(out, xs)
    }
}

/// diffusers' `BasicTransformerBlock` (layer norms, no adaptive norm, GEGLU).
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn load(vb: VarBuilder, spec: TransformerSpec) -> candle_core::Result<Self> {
        let c = spec.channels;
        let norm = |name: &str| candle_nn::layer_norm(c, 1e-5, vb.pp(name));
        let inner = 4 * c;
        Ok(Self {
            norm1: norm("norm1")?,
            attn1: Attention::load(vb.pp("attn1"), c, c, spec.heads)?,
            norm2: norm("norm2")?,
            attn2: Attention::load(vb.pp("attn2"), c, spec.context_dim, spec.heads)?,
            norm3: norm("norm3")?,
            ff_in: linear(c, 2 * inner, vb.pp("ff").pp("net").pp("0").pp("proj"))?,
            ff_out: linear(inner, c, vb.pp("ff").pp("net").pp("2"))?,
        })
    }

    fn forward(&self, xs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let xs = add(self.attn1.forward(&self.norm1.forward(xs)?, None)?, xs)?;
        let xs = add(self.attn2.forward(&self.norm2.forward(&xs)?, Some(context))?, &xs)?;
        let ff = self.ff_out.forward(&geglu(&self.ff_in.forward(&self.norm3.forward(&xs)?)?)?)?;
        add(ff, &xs)
    }
}

/// diffusers' `Attention`: bias-free query, key and value projections, scaled dot-product
/// attention per head, and the output projection `to_out.0`.
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn load(vb: VarBuilder, channels: usize, context_dim: usize, heads: usize) -> candle_core::Result<Self> {
        if heads == 0 || !channels.is_multiple_of(heads) {
            return Err(candle_core::Error::Msg(format!(
                "{channels} attention channels do not split into {heads} heads"
            )));
        }
        Ok(Self {
            to_q: linear_no_bias(channels, channels, vb.pp("to_q"))?,
            to_k: linear_no_bias(context_dim, channels, vb.pp("to_k"))?,
            to_v: linear_no_bias(context_dim, channels, vb.pp("to_v"))?,
            to_out: linear(channels, channels, vb.pp("to_out").pp("0"))?,
            heads,
            scale: 1.0 / ((channels / heads) as f64).sqrt(),
        })
    }

    /// `xs` `[batch, tokens, C]` attending to itself, or to `context`: flash attention where
    /// the build has it and the UNet runs in f16 or bf16 on a GPU (`precision`), else the
    /// attention kernel (block by block on the CPU, the plain ops elsewhere).
    fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let context = context.unwrap_or(xs);
        #[cfg(feature = "flash-attn")]
        if crate::precision::uses_flash_attention(xs.device(), xs.dtype()) {
            return self.flash(xs, context);
        }
        let q = (self.to_q.forward(xs)? * self.scale)?;
        let out = attention(&q, &self.to_k.forward(context)?, &self.to_v.forward(context)?, self.heads)?;
        self.to_out.forward(&out)
    }

    /// The same attention through candle-flash-attn's fused kernel, which takes
    /// `[batch, tokens, heads, head_dim]` and applies the scale itself.
    #[cfg(feature = "flash-attn")]
    fn flash(&self, xs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens, channels) = xs.dims3()?;
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            let n = t.dim(1)?;
            t.reshape((batch, n, self.heads, channels / self.heads))
        };
        let q = heads(self.to_q.forward(xs)?)?;
        let k = heads(self.to_k.forward(context)?)?;
        let v = heads(self.to_v.forward(context)?)?;
        let out = candle_flash_attn::flash_attn(&q, &k, &v, self.scale as f32, false)?;
        self.to_out.forward(&out.reshape((batch, tokens, channels))?)
    }
}
