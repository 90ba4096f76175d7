//! The conditional UNet of every family, as diffusers' `UNet2DConditionModel`: genmint's own
//! blocks ([`blocks`], over [`crate::resnet`] and [`transformer`]) on genmint's CPU kernels
//! ([`crate::kernels`]), candle-transformers' sinusoidal timestep projection, and a top-level
//! forward with a place for SDXL's added conditioning. Every row of a batch is computed from its
//! own inputs alone, bit for bit, so batched requests get the pixels they get alone.
//!
//! ```text
//! timestep ─► sinusoidal projection ─► time_embedding (linear, silu, linear) ─┐
//! SDXL only (addition_embed_type "text_time"):                                 + ─► emb
//!   time ids [B, 6] ─► sinusoidal projection each ─┐                           │
//!   pooled text_embeds [B, P] ──────────── concat ─┴► add_embedding ───────────┘
//! sample ─► conv_in ─► down blocks (emb, context) ─► mid block ─► up blocks (with the skips)
//!        ─► group norm, silu, conv_out ─► prediction
//! ```
//!
//! Weights are read by diffusers' names (`time_embedding.linear_1`, `add_embedding.linear_2`,
//! `down_blocks.N…`), the same file diffusers' `UNet2DConditionModel` saves.

mod blocks;

mod transformer;

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::embeddings::Timesteps;
use candle_transformers::models::stable_diffusion::unet_2d::{BlockConfig, UNet2DConditionModelConfig};

use crate::configs::{TextTimeSpec, UnetSpec};
use crate::kernels::{Conv2d, ConvGeometry, GroupNorm, Linear, linear};
use crate::resnet::NormSpec;
use blocks::{Attention, BlockShape, DownBlock, MidBlock, UpBlock, UpChannels};

/// SDXL's added conditioning for a batch: the pooled text embedding `[batch, P]` and the six size
/// ids `[batch, 6]` (original H, W; crop top, left; target H, W).
pub(crate) struct AddedConditioning {
    pub text_embeds: Tensor,
    pub time_ids: Tensor,
}

/// diffusers' `TimestepEmbedding`: linear, SiLU, linear.
struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    fn new(vb: VarBuilder, channels: usize, time_embed_dim: usize) -> candle_core::Result<Self> {
        Ok(Self {
            linear_1: linear(channels, time_embed_dim, vb.pp("linear_1"))?,
            linear_2: linear(time_embed_dim, time_embed_dim, vb.pp("linear_2"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.linear_2.forward(&candle_nn::ops::silu(&self.linear_1.forward(xs)?)?)
    }
}

/// `add_time_proj` and `add_embedding` of a `text_time` UNet.
struct TextTimeEmbedding {
    time_ids_proj: Timesteps,
    add_embedding: TimestepEmbedding,
}

impl TextTimeEmbedding {
    /// `[batch, time_embed_dim]`, to be added to the timestep's embedding.
    fn forward(&self, added: &AddedConditioning) -> candle_core::Result<Tensor> {
        let batch = added.text_embeds.dim(0)?;
        let ids = self.time_ids_proj.forward(&added.time_ids.flatten_all()?)?.reshape((batch, ()))?;
        let ids = ids.to_dtype(added.text_embeds.dtype())?;
        let input = Tensor::cat(&[&added.text_embeds, &ids], 1)?;
        self.add_embedding.forward(&input)
    }
}

/// diffusers' `UNet2DConditionModel` for the configurations [`UnetSpec`] accepts.
pub(crate) struct Unet {
    conv_in: Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    text_time: Option<TextTimeEmbedding>,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    center_input_sample: bool,
    /// The weights' element type: inputs are cast to it, the prediction back to f32.
    dtype: DType,
}

impl Unet {
    pub fn new(vb: VarBuilder, spec: &UnetSpec) -> candle_core::Result<Self> {
        let c = &spec.config;
        let (first, last) = match (c.blocks.first(), c.blocks.last()) {
            (Some(first), Some(last)) => (first.out_channels, *last),
            _ => return Err(candle_core::Error::Msg("a UNet needs at least one block".to_string())),
        };
        let temb = first * 4;
        let text_time = spec.text_time.as_ref().map(|t| text_time(&vb, c, t, temb)).transpose()?;
        let shape = BlockShape {
            layers: c.layers_per_block,
            temb,
            norm: NormSpec { groups: c.norm_num_groups, eps: c.norm_eps },
            context_dim: c.cross_attention_dim,
            linear_projection: c.use_linear_projection,
        };
        let down_blocks =
            (0..c.blocks.len()).map(|i| down_block(&vb, c, &shape, i)).collect::<candle_core::Result<_>>()?;
        let up_blocks =
            (0..c.blocks.len()).map(|i| up_block(&vb, c, &shape, i)).collect::<candle_core::Result<_>>()?;
        let mid_attention =
            Attention { heads: last.attention_head_dim, depth: last.use_cross_attn.unwrap_or(1) };
        let mid_block = MidBlock::load(
            vb.pp("mid_block"),
            &shape,
            last.out_channels,
            mid_attention,
            c.mid_block_scale_factor,
        )?;
        let conv3 = |vb, c_in, c_out| Conv2d::load(vb, c_in, c_out, 3, ConvGeometry::same(3));
        Ok(Self {
            conv_in: conv3(vb.pp("conv_in"), spec.in_channels, first)?,
            time_proj: Timesteps::new(first, c.flip_sin_to_cos, c.freq_shift),
            time_embedding: TimestepEmbedding::new(vb.pp("time_embedding"), first, temb)?,
            text_time,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(vb.pp("conv_norm_out"), c.norm_num_groups, first, c.norm_eps)?,
            conv_out: conv3(vb.pp("conv_out"), first, spec.out_channels)?,
            center_input_sample: c.center_input_sample,
            dtype: vb.dtype(),
        })
    }

    /// Whether the UNet takes SDXL's added conditioning.
    pub fn takes_added_conditioning(&self) -> bool {
        self.text_time.is_some()
    }

    /// The timestep's embedding for a batch of `batch`, plus the added conditioning's.
    fn embedding(
        &self,
        batch: usize,
        timestep: f64,
        added: Option<&AddedConditioning>,
        device: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        // One row for all: every row of the batch is at the same timestep.
        let t = (Tensor::ones(1, DType::F32, device)? * timestep)?;
        let emb = self.time_embedding.forward(&self.time_proj.forward(&t)?.to_dtype(self.dtype)?)?;
        let emb = emb.repeat((batch, 1))?;
        match (&self.text_time, added) {
            (Some(text_time), Some(added)) => {
                let added = AddedConditioning {
                    text_embeds: added.text_embeds.to_dtype(self.dtype)?,
                    time_ids: added.time_ids.clone(),
                };
                emb + text_time.forward(&added)?
            }
            (None, None) => Ok(emb),
            (Some(_), None) => Err(candle_core::Error::Msg(
                "this UNet's text_time conditioning needs the pooled text embedding and size ids".to_string(),
            )),
            (None, Some(_)) => {
                Err(candle_core::Error::Msg("this UNet takes no added conditioning".to_string()))
            }
        }
    }

    /// The prediction (f32) for `xs` `[batch, C, h, w]` at `timestep`, attending to `context`;
    /// computed in the weights' element type (a no-op cast for f32).
    pub fn forward(
        &self,
        xs: &Tensor,
        timestep: f64,
        context: &Tensor,
        added: Option<&AddedConditioning>,
    ) -> candle_core::Result<Tensor> {
        let (xs, context) = (xs.to_dtype(self.dtype)?, context.to_dtype(self.dtype)?);
        let (xs, context) = (&xs, &context);
        let (batch, _, height, width) = xs.dims4()?;
        let emb = self.embedding(batch, timestep, added, xs.device())?;
        let xs = if self.center_input_sample { ((xs * 2.0)? - 1.0)? } else { xs.clone() };
        let mut xs = self.conv_in.forward(&xs)?;
        // Every ResNet block takes SiLU of the embedding: computed once here.
        let temb_silu = candle_nn::ops::silu(&emb)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            let (out, res) = block.forward(&xs, &temb_silu, context)?;
            skips.extend(res);
            xs = out;
        }
        let mut xs = self.mid_block.forward(&xs, &temb_silu, context)?;
        // diffusers passes the skip's size to the upsampler when the sides do not halve evenly.
        let factor = 1usize << (self.up_blocks.len() - 1);
        let uneven = !height.is_multiple_of(factor) || !width.is_multiple_of(factor);
        let last = self.up_blocks.len() - 1;
        for (i, block) in self.up_blocks.iter().enumerate() {
            let res = skips.split_off(skips.len().saturating_sub(block.skips()));
            let size = match skips.last() {
                Some(skip) if uneven && i < last => Some((skip.dim(2)?, skip.dim(3)?)),
                _ => None,
            };
            xs = block.forward(&xs, &res, &temb_silu, context, size)?;
        }
        self.conv_out.forward(&self.conv_norm_out.forward_silu(&xs)?)?.to_dtype(DType::F32)
    }
}

fn text_time(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    t: &TextTimeSpec,
    temb: usize,
) -> candle_core::Result<TextTimeEmbedding> {
    Ok(TextTimeEmbedding {
        time_ids_proj: Timesteps::new(t.addition_time_embed_dim, c.flip_sin_to_cos, c.freq_shift),
        add_embedding: TimestepEmbedding::new(vb.pp("add_embedding"), t.input_dim, temb)?,
    })
}

/// Heads and depth of level `i`'s transformers, if it attends.
fn attention(block: &BlockConfig) -> Option<Attention> {
    block.use_cross_attn.map(|depth| Attention { heads: block.attention_head_dim, depth })
}

/// Down block `i`: from the previous level's channels (or the first level's) to its own.
fn down_block(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    shape: &BlockShape,
    i: usize,
) -> candle_core::Result<DownBlock> {
    let block = &c.blocks[i];
    let in_channels = c.blocks[i.saturating_sub(1)].out_channels;
    let downsample = (i + 1 < c.blocks.len()).then_some(c.downsample_padding);
    let vb = vb.pp("down_blocks").pp(i.to_string());
    DownBlock::load(vb, shape, (in_channels, block.out_channels), attention(block), downsample)
}

/// Up block `i` mirrors down block `n − 1 − i`, taking its skips.
fn up_block(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    shape: &BlockShape,
    i: usize,
) -> candle_core::Result<UpBlock> {
    let n = c.blocks.len();
    let block = &c.blocks[n - 1 - i];
    let channels = UpChannels {
        previous: c.blocks[n - i.max(1)].out_channels,
        out: block.out_channels,
        skip_in: c.blocks[(n - 1 - i).saturating_sub(1)].out_channels,
    };
    UpBlock::load(vb.pp("up_blocks").pp(i.to_string()), shape, channels, attention(block), i + 1 < n)
}
