//! The decoder half of diffusers' `AutoencoderKL` (latents → RGB in [-1, 1]) on genmint's
//! blocks and kernels:
//!
//! ```text
//! latents ─► post_quant_conv (1×1) ─► conv_in ─► mid block (ResNet, one-head attention, ResNet)
//!         ─► up blocks (layers + 1 ResNets, then ×2 upsampling but at the last) ─► group norm,
//!            SiLU, conv_out ─► RGB
//! ```
//!
//! Weights are read by diffusers' names under `decoder.` (the attention's legacy names
//! `query`/`key`/`value`/`proj_attn` and 1×1-convolution shapes too, as older checkpoints have
//! them).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKLConfig;

use crate::kernels::{Conv2d, ConvGeometry, GroupNorm, Linear, add, attention};
use crate::resnet::{NormSpec, ResnetBlock, Upsample};

/// Group norms of a VAE use this epsilon throughout.
const EPS: f64 = 1e-6;

pub(crate) struct VaeDecoder {
    post_quant_conv: Option<Conv2d>,
    conv_in: Conv2d,
    mid: [ResnetBlock; 2],
    mid_attention: MidAttention,
    up_blocks: Vec<(Vec<ResnetBlock>, Option<Upsample>)>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl VaeDecoder {
    pub fn load(
        vb: VarBuilder,
        config: &AutoEncoderKLConfig,
        out_channels: usize,
    ) -> candle_core::Result<Self> {
        let channels = &config.block_out_channels;
        let (Some(&first), Some(&last)) = (channels.first(), channels.last()) else {
            return Err(candle_core::Error::Msg("a VAE needs at least one block".to_string()));
        };
        let norm = NormSpec { groups: config.norm_num_groups, eps: EPS };
        let latent = config.latent_channels;
        let post_quant_conv = config
            .use_post_quant_conv
            .then(|| Conv2d::load(vb.pp("post_quant_conv"), latent, latent, 1, ConvGeometry::same(1)))
            .transpose()?;
        let vb = vb.pp("decoder");
        let resnet = |vb: VarBuilder, c_in, c_out| ResnetBlock::load(vb, c_in, c_out, None, norm, 1.0);
        let mid = vb.pp("mid_block");
        let up_blocks = channels
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &out)| {
                let vb = vb.pp("up_blocks").pp(i.to_string());
                let previous = channels[channels.len() - i.max(1)];
                let resnets = (0..=config.layers_per_block)
                    .map(|j| {
                        resnet(vb.pp("resnets").pp(j.to_string()), if j == 0 { previous } else { out }, out)
                    })
                    .collect::<candle_core::Result<_>>()?;
                let upsampler = (i + 1 < channels.len())
                    .then(|| Upsample::load(vb.pp("upsamplers").pp("0"), out))
                    .transpose()?;
                Ok((resnets, upsampler))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            post_quant_conv,
            conv_in: Conv2d::load(vb.pp("conv_in"), latent, last, 3, ConvGeometry::same(3))?,
            mid: [
                resnet(mid.pp("resnets").pp("0"), last, last)?,
                resnet(mid.pp("resnets").pp("1"), last, last)?,
            ],
            mid_attention: MidAttention::load(mid.pp("attentions").pp("0"), last, norm.groups)?,
            up_blocks,
            conv_norm_out: GroupNorm::load(vb.pp("conv_norm_out"), norm.groups, first, EPS)?,
            conv_out: Conv2d::load(vb.pp("conv_out"), first, out_channels, 3, ConvGeometry::same(3))?,
        })
    }

    /// Scaled latents `[batch, latent, h, w]` → RGB `[batch, 3, h · f, w · f]` in about [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        let xs = match &self.post_quant_conv {
            Some(conv) => conv.forward(latents)?,
            None => latents.clone(),
        };
        let xs = self.conv_in.forward(&xs)?;
        let xs = self.mid[0].forward(&xs, None)?;
        let xs = self.mid_attention.forward(&xs)?;
        let mut xs = self.mid[1].forward(&xs, None)?;
        for (resnets, upsampler) in &self.up_blocks {
            for resnet in resnets {
                xs = resnet.forward(&xs, None)?;
            }
            if let Some(upsampler) = upsampler {
                xs = upsampler.forward(&xs, None)?;
            }
        }
        self.conv_out.forward(&self.conv_norm_out.forward_silu(&xs)?)
    }
}

/// The mid block's attention: group norm, one head over all pixels, output projection, input
/// added back.
struct MidAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    scale: f64,
}

impl MidAttention {
    fn load(vb: VarBuilder, channels: usize, groups: usize) -> candle_core::Result<Self> {
        let legacy = !vb.contains_tensor("to_q.weight");
        let names = if legacy {
            ["query", "key", "value", "proj_attn"]
        } else {
            ["to_q", "to_k", "to_v", "to_out.0"]
        };
        let linear = |name: &str| -> candle_core::Result<Linear> {
            let vb = vb.pp(name);
            // Older checkpoints store these as 1×1 convolutions.
            let weight = match vb.get((channels, channels), "weight") {
                Ok(weight) => weight,
                Err(_) => vb.get((channels, channels, 1, 1), "weight")?.reshape((channels, channels))?,
            };
            Ok(Linear::new(weight, Some(vb.get(channels, "bias")?)))
        };
        Ok(Self {
            group_norm: GroupNorm::load(vb.pp("group_norm"), groups, channels, EPS)?,
            to_q: linear(names[0])?,
            to_k: linear(names[1])?,
            to_v: linear(names[2])?,
            to_out: linear(names[3])?,
            scale: 1.0 / (channels as f64).sqrt(),
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, channels, height, width) = xs.dims4()?;
        let tokens = self
            .group_norm
            .forward(xs)?
            .reshape((batch, channels, height * width))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = (self.to_q.forward(&tokens)? * self.scale)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        let out = self.to_out.forward(&attention(&q, &k, &v, 1)?)?;
        add(out.transpose(1, 2)?.reshape((batch, channels, height, width))?, xs)
    }
}
