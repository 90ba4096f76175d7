//! The conditional UNet of every family, assembled from candle-transformers' Stable Diffusion
//! blocks (`unet_2d_blocks`, `embeddings`) with its own top-level forward, because candle's
//! `UNet2DConditionModel` has no place for SDXL's added conditioning.
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

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::embeddings::{TimestepEmbedding, Timesteps};
use candle_transformers::models::stable_diffusion::unet_2d::{BlockConfig, UNet2DConditionModelConfig};
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    CrossAttnDownBlock2D, CrossAttnDownBlock2DConfig, CrossAttnUpBlock2D, CrossAttnUpBlock2DConfig,
    DownBlock2D, DownBlock2DConfig, UNetMidBlock2DCrossAttn, UNetMidBlock2DCrossAttnConfig, UpBlock2D,
    UpBlock2DConfig,
};

use crate::configs::{TextTimeSpec, UnetSpec};

/// SDXL's added conditioning for a batch: the pooled text embedding `[batch, P]` and the six size
/// ids `[batch, 6]` (original H, W; crop top, left; target H, W).
pub(crate) struct AddedConditioning {
    pub text_embeds: Tensor,
    pub time_ids: Tensor,
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
        let input = Tensor::cat(&[&added.text_embeds, &ids], 1)?;
        self.add_embedding.forward(&input)
    }
}

enum DownBlock {
    Plain(DownBlock2D),
    CrossAttn(CrossAttnDownBlock2D),
}

enum UpBlock {
    Plain(UpBlock2D),
    CrossAttn(CrossAttnUpBlock2D),
}

impl UpBlock {
    fn resnets(&self) -> usize {
        match self {
            UpBlock::Plain(b) => b.resnets.len(),
            UpBlock::CrossAttn(b) => b.upblock.resnets.len(),
        }
    }
}

/// diffusers' `UNet2DConditionModel` for the configurations [`UnetSpec`] accepts.
pub(crate) struct Unet {
    conv_in: candle_nn::Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    text_time: Option<TextTimeEmbedding>,
    down_blocks: Vec<DownBlock>,
    mid_block: UNetMidBlock2DCrossAttn,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: candle_nn::GroupNorm,
    conv_out: candle_nn::Conv2d,
    center_input_sample: bool,
}

/// The 3×3 convolutions at both ends keep the sides.
fn same_size() -> candle_nn::Conv2dConfig {
    candle_nn::Conv2dConfig { padding: 1, ..Default::default() }
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
        let down_blocks =
            (0..c.blocks.len()).map(|i| down_block(&vb, c, i, temb)).collect::<candle_core::Result<_>>()?;
        let up_blocks =
            (0..c.blocks.len()).map(|i| up_block(&vb, c, i, temb)).collect::<candle_core::Result<_>>()?;
        Ok(Self {
            conv_in: candle_nn::conv2d(spec.in_channels, first, 3, same_size(), vb.pp("conv_in"))?,
            time_proj: Timesteps::new(first, c.flip_sin_to_cos, c.freq_shift),
            time_embedding: TimestepEmbedding::new(vb.pp("time_embedding"), first, temb)?,
            text_time,
            down_blocks,
            mid_block: mid_block(&vb, c, last, temb)?,
            up_blocks,
            conv_norm_out: candle_nn::group_norm(
                c.norm_num_groups,
                first,
                c.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: candle_nn::conv2d(first, spec.out_channels, 3, same_size(), vb.pp("conv_out"))?,
            center_input_sample: c.center_input_sample,
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
        let t = (Tensor::ones(batch, candle_core::DType::F32, device)? * timestep)?;
        let emb = self.time_embedding.forward(&self.time_proj.forward(&t)?)?;
        match (&self.text_time, added) {
            (Some(text_time), Some(added)) => emb + text_time.forward(added)?,
            (None, None) => Ok(emb),
            (Some(_), None) => Err(candle_core::Error::Msg(
                "this UNet's text_time conditioning needs the pooled text embedding and size ids".to_string(),
            )),
            (None, Some(_)) => {
                Err(candle_core::Error::Msg("this UNet takes no added conditioning".to_string()))
            }
        }
    }

    /// The prediction for `xs` `[batch, C, h, w]` at `timestep`, attending to `context`.
    pub fn forward(
        &self,
        xs: &Tensor,
        timestep: f64,
        context: &Tensor,
        added: Option<&AddedConditioning>,
    ) -> candle_core::Result<Tensor> {
        let (batch, _, height, width) = xs.dims4()?;
        let emb = self.embedding(batch, timestep, added, xs.device())?;
        let xs = if self.center_input_sample { ((xs * 2.0)? - 1.0)? } else { xs.clone() };
        let mut xs = self.conv_in.forward(&xs)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            let (out, res) = match block {
                DownBlock::Plain(b) => b.forward(&xs, Some(&emb))?,
                DownBlock::CrossAttn(b) => b.forward(&xs, Some(&emb), Some(context))?,
            };
            skips.extend(res);
            xs = out;
        }
        let mut xs = self.mid_block.forward(&xs, Some(&emb), Some(context))?;
        // diffusers passes the skip's size to the upsampler when the sides do not halve evenly.
        let factor = 1usize << (self.up_blocks.len() - 1);
        let uneven = !height.is_multiple_of(factor) || !width.is_multiple_of(factor);
        let last = self.up_blocks.len() - 1;
        for (i, block) in self.up_blocks.iter().enumerate() {
            let res = skips.split_off(skips.len().saturating_sub(block.resnets()));
            let size = match skips.last() {
                Some(skip) if uneven && i < last => Some((skip.dim(2)?, skip.dim(3)?)),
                _ => None,
            };
            xs = match block {
                UpBlock::Plain(b) => b.forward(&xs, &res, Some(&emb), size)?,
                UpBlock::CrossAttn(b) => b.forward(&xs, &res, Some(&emb), size, Some(context))?,
            };
        }
        let xs = candle_nn::ops::silu(&self.conv_norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
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

/// Down block `i`: from the previous level's channels (or the first level's) to its own.
fn down_block(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    i: usize,
    temb: usize,
) -> candle_core::Result<DownBlock> {
    let BlockConfig { out_channels, use_cross_attn, attention_head_dim } = c.blocks[i];
    let in_channels = c.blocks[i.saturating_sub(1)].out_channels;
    let downblock = DownBlock2DConfig {
        num_layers: c.layers_per_block,
        resnet_eps: c.norm_eps,
        resnet_groups: c.norm_num_groups,
        add_downsample: i + 1 < c.blocks.len(),
        downsample_padding: c.downsample_padding,
        ..Default::default()
    };
    let vb = vb.pp("down_blocks").pp(i.to_string());
    Ok(match use_cross_attn {
        Some(layers) => {
            let config = CrossAttnDownBlock2DConfig {
                downblock,
                attn_num_head_channels: attention_head_dim,
                cross_attention_dim: c.cross_attention_dim,
                sliced_attention_size: None,
                use_linear_projection: c.use_linear_projection,
                transformer_layers_per_block: layers,
            };
            DownBlock::CrossAttn(CrossAttnDownBlock2D::new(
                vb,
                in_channels,
                out_channels,
                Some(temb),
                false,
                config,
            )?)
        }
        None => DownBlock::Plain(DownBlock2D::new(vb, in_channels, out_channels, Some(temb), downblock)?),
    })
}

/// Up block `i` mirrors down block `n − 1 − i`, taking its skips.
fn up_block(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    i: usize,
    temb: usize,
) -> candle_core::Result<UpBlock> {
    let n = c.blocks.len();
    let BlockConfig { out_channels, use_cross_attn, attention_head_dim } = c.blocks[n - 1 - i];
    let prev_out_channels = c.blocks[n - i.max(1)].out_channels;
    let in_channels = c.blocks[(n - 1 - i).saturating_sub(1)].out_channels;
    let upblock = UpBlock2DConfig {
        num_layers: c.layers_per_block + 1,
        resnet_eps: c.norm_eps,
        resnet_groups: c.norm_num_groups,
        add_upsample: i + 1 < n,
        ..Default::default()
    };
    let vb = vb.pp("up_blocks").pp(i.to_string());
    Ok(match use_cross_attn {
        Some(layers) => {
            let config = CrossAttnUpBlock2DConfig {
                upblock,
                attn_num_head_channels: attention_head_dim,
                cross_attention_dim: c.cross_attention_dim,
                sliced_attention_size: None,
                use_linear_projection: c.use_linear_projection,
                transformer_layers_per_block: layers,
            };
            let block = CrossAttnUpBlock2D::new(
                vb,
                in_channels,
                prev_out_channels,
                out_channels,
                Some(temb),
                false,
                config,
            )?;
            UpBlock::CrossAttn(block)
        }
        None => UpBlock::Plain(UpBlock2D::new(
            vb,
            in_channels,
            prev_out_channels,
            out_channels,
            Some(temb),
            upblock,
        )?),
    })
}

/// The mid block at the last level's width, with its heads and transformer depth.
fn mid_block(
    vb: &VarBuilder,
    c: &UNet2DConditionModelConfig,
    last: BlockConfig,
    temb: usize,
) -> candle_core::Result<UNetMidBlock2DCrossAttn> {
    let config = UNetMidBlock2DCrossAttnConfig {
        resnet_eps: c.norm_eps,
        output_scale_factor: c.mid_block_scale_factor,
        cross_attn_dim: c.cross_attention_dim,
        attn_num_head_channels: last.attention_head_dim,
        resnet_groups: Some(c.norm_num_groups),
        use_linear_projection: c.use_linear_projection,
        transformer_layers_per_block: last.use_cross_attn.unwrap_or(1),
        ..Default::default()
    };
    UNetMidBlock2DCrossAttn::new(vb.pp("mid_block"), last.out_channels, Some(temb), false, config)
}
