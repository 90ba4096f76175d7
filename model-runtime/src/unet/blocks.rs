//! The levels of a UNet: diffusers' `DownBlock2D` / `CrossAttnDownBlock2D` (ResNet blocks, each
//! followed by a transformer in the cross-attention kind, then a downsampler), the mirrored up
//! blocks that take the down path's outputs back as skips, and `UNetMidBlock2DCrossAttn`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::transformer::{Transformer2d, TransformerSpec};
use crate::resnet::{Downsample, NormSpec, ResnetBlock, Upsample};

/// What every block of one UNet shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockShape {
    pub layers: usize,
    pub temb: usize,
    pub norm: NormSpec,
    pub context_dim: usize,
    pub linear_projection: bool,
}

/// Heads and transformer depth of a cross-attention level; none for a plain one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attention {
    pub heads: usize,
    pub depth: usize,
}

impl BlockShape {
    fn transformer(
        &self,
        vb: VarBuilder,
        channels: usize,
        attention: Attention,
    ) -> candle_core::Result<Transformer2d> {
        Transformer2d::load(
            vb,
            TransformerSpec {
                channels,
                heads: attention.heads,
                depth: attention.depth,
                context_dim: self.context_dim,
                groups: self.norm.groups,
                linear_projection: self.linear_projection,
            },
        )
    }

    fn transformers(
        &self,
        vb: &VarBuilder,
        channels: usize,
        count: usize,
        attention: Option<Attention>,
    ) -> candle_core::Result<Vec<Transformer2d>> {
        let Some(attention) = attention else { return Ok(Vec::new()) };
        (0..count)
            .map(|i| self.transformer(vb.pp("attentions").pp(i.to_string()), channels, attention))
            .collect()
    }
}

/// A down level: `layers` ResNet blocks (each followed by a transformer if the level attends),
/// then a downsampler unless it is the last level.
pub(crate) struct DownBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2d>,
    downsampler: Option<Downsample>,
}

impl DownBlock {
    pub fn load(
        vb: VarBuilder,
        shape: &BlockShape,
        (in_channels, out_channels): (usize, usize),
        attention: Option<Attention>,
        downsample_padding: Option<usize>,
    ) -> candle_core::Result<Self> {
        let resnets = (0..shape.layers)
            .map(|i| {
                let c_in = if i == 0 { in_channels } else { out_channels };
                let vb = vb.pp("resnets").pp(i.to_string());
                ResnetBlock::load(vb, c_in, out_channels, Some(shape.temb), shape.norm, 1.0)
            })
            .collect::<candle_core::Result<_>>()?;
        let downsampler = downsample_padding
            .map(|padding| Downsample::load(vb.pp("downsamplers").pp("0"), out_channels, padding))
            .transpose()?;
        Ok(Self {
            resnets,
            attentions: shape.transformers(&vb, out_channels, shape.layers, attention)?,
            downsampler,
        })
    }

    /// The level's output and what it hands to the up path (each layer's output, then the
    /// downsampled one).
    pub fn forward(
        &self,
        xs: &Tensor,
        temb_silu: &Tensor,
        context: &Tensor,
    ) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let mut xs = xs.clone();
        let mut skips = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, Some(temb_silu))?;
            if let Some(attention) = self.attentions.get(i) {
                xs = attention.forward(&xs, context)?;
            }
            skips.push(xs.clone());
        }
        if let Some(downsampler) = &self.downsampler {
            xs = downsampler.forward(&xs)?;
            skips.push(xs.clone());
        }
        Ok((xs, skips))
    }
}

/// An up level: `layers + 1` ResNet blocks, each taking the previous output concatenated with
/// one skip (the last first), each followed by a transformer if the level attends, then an
/// upsampler unless it is the last level.
pub(crate) struct UpBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2d>,
    upsampler: Option<Upsample>,
}

/// The widths an up level joins: the level below's output, its own, and the skips' of the
/// down level before its mirror (its last skip).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpChannels {
    pub previous: usize,
    pub out: usize,
    pub skip_in: usize,
}

impl UpBlock {
    pub fn load(
        vb: VarBuilder,
        shape: &BlockShape,
        channels: UpChannels,
        attention: Option<Attention>,
        upsample: bool,
    ) -> candle_core::Result<Self> {
        let layers = shape.layers + 1;
        let resnets = (0..layers)
            .map(|i| {
                let skip = if i + 1 == layers { channels.skip_in } else { channels.out };
                let c_in = if i == 0 { channels.previous } else { channels.out };
                let vb = vb.pp("resnets").pp(i.to_string());
                ResnetBlock::load(vb, c_in + skip, channels.out, Some(shape.temb), shape.norm, 1.0)
            })
            .collect::<candle_core::Result<_>>()?;
        let upsampler =
            upsample.then(|| Upsample::load(vb.pp("upsamplers").pp("0"), channels.out)).transpose()?;
        Ok(Self { resnets, attentions: shape.transformers(&vb, channels.out, layers, attention)?, upsampler })
    }

    /// How many skips the level takes.
    pub fn skips(&self) -> usize {
        self.resnets.len()
    }

    /// `skips` in the order the down path made them; `size`: the upsampler's target sides when
    /// they do not double evenly.
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &[Tensor],
        temb_silu: &Tensor,
        context: &Tensor,
        size: Option<(usize, usize)>,
    ) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for (i, (resnet, skip)) in self.resnets.iter().zip(skips.iter().rev()).enumerate() {
            xs = resnet.forward(&Tensor::cat(&[&xs, skip], 1)?, Some(temb_silu))?;
            if let Some(attention) = self.attentions.get(i) {
                xs = attention.forward(&xs, context)?;
            }
        }
        match &self.upsampler {
            Some(upsampler) => upsampler.forward(&xs, size),
            None => Ok(xs),
        }
    }
}

/// diffusers' `UNetMidBlock2DCrossAttn`: a ResNet block, then (transformer, ResNet block) once.
pub(crate) struct MidBlock {
    first: ResnetBlock,
    attention: Transformer2d,
    second: ResnetBlock,
}

impl MidBlock {
    pub fn load(
        vb: VarBuilder,
        shape: &BlockShape,
        channels: usize,
        attention: Attention,
        output_scale_factor: f64,
    ) -> candle_core::Result<Self> {
        let resnet = |i: usize| {
            let vb = vb.pp("resnets").pp(i.to_string());
            ResnetBlock::load(vb, channels, channels, Some(shape.temb), shape.norm, output_scale_factor)
        };
        Ok(Self {
            first: resnet(0)?,
            attention: shape.transformer(vb.pp("attentions").pp("0"), channels, attention)?,
            second: resnet(1)?,
        })
    }

    pub fn forward(&self, xs: &Tensor, temb_silu: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let xs = self.first.forward(xs, Some(temb_silu))?;
        let xs = self.attention.forward(&xs, context)?;
        self.second.forward(&xs, Some(temb_silu))
    }
}
