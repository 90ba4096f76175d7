//! The convolutional parts of a UNet level and of the VAE decoder, as diffusers builds them: `ResnetBlock2D` (group
//! norm, SiLU, 3×3 convolution, the timestep's embedding added per channel, again, and the
//! input added back through a 1×1 convolution when the width changes), `Downsample2D` (a
//! stride-2 convolution) and `Upsample2D` (nearest-neighbour doubling, then a convolution).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::kernels::{Conv2d, ConvGeometry, GroupNorm, Linear, add, linear};

/// Group count and epsilon of a block's group norms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormSpec {
    pub groups: usize,
    pub eps: f64,
}

/// diffusers' `ResnetBlock2D` with `time_embedding_norm = "default"`.
pub(crate) struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock {
    /// A block from `in_channels` to `out_channels`; `temb` is the width of the timestep's
    /// embedding (none in a VAE).
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        temb: Option<usize>,
        norm: NormSpec,
        output_scale_factor: f64,
    ) -> candle_core::Result<Self> {
        let conv3 = |vb, c_in| Conv2d::load(vb, c_in, out_channels, 3, ConvGeometry::same(3));
        let conv_shortcut = (in_channels != out_channels)
            .then(|| {
                Conv2d::load(vb.pp("conv_shortcut"), in_channels, out_channels, 1, ConvGeometry::same(1))
            })
            .transpose()?;
        let time_emb_proj =
            temb.map(|temb| linear(temb, out_channels, vb.pp("time_emb_proj"))).transpose()?;
        Ok(Self {
            norm1: GroupNorm::load(vb.pp("norm1"), norm.groups, in_channels, norm.eps)?,
            conv1: conv3(vb.pp("conv1"), in_channels)?,
            time_emb_proj,
            norm2: GroupNorm::load(vb.pp("norm2"), norm.groups, out_channels, norm.eps)?,
            conv2: conv3(vb.pp("conv2"), out_channels)?,
            conv_shortcut,
            output_scale_factor,
        })
    }

    /// `xs` `[batch, in, h, w]` → `[batch, out, h, w]`; `temb_silu` is SiLU of the timestep's
    /// embedding `[batch, temb]` (computed once for all blocks).
    pub fn forward(&self, xs: &Tensor, temb_silu: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(xs)?)?;
        if let (Some(proj), Some(temb)) = (&self.time_emb_proj, temb_silu) {
            h = add(h, &proj.forward(temb)?)?;
        }
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let out = match &self.conv_shortcut {
            Some(shortcut) => add(h, &shortcut.forward(xs)?)?,
            None => add(h, xs)?,
        };
        if self.output_scale_factor == 1.0 { Ok(out) } else { out / self.output_scale_factor }
    }
}

/// diffusers' `Downsample2D` with a convolution: halves the sides.
pub(crate) struct Downsample {
    conv: Conv2d,
    /// diffusers pads right and bottom by one itself when the convolution has no padding.
    pad_right_bottom: bool,
}

impl Downsample {
    pub fn load(vb: VarBuilder, channels: usize, padding: usize) -> candle_core::Result<Self> {
        let conv = Conv2d::load(vb.pp("conv"), channels, channels, 3, ConvGeometry { padding, stride: 2 })?;
        Ok(Self { conv, pad_right_bottom: padding == 0 })
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        if self.pad_right_bottom {
            self.conv.forward(&xs.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?)
        } else {
            self.conv.forward(xs)
        }
    }
}

/// diffusers' `Upsample2D` with a convolution: doubles the sides (or reaches `size`).
pub(crate) struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn load(vb: VarBuilder, channels: usize) -> candle_core::Result<Self> {
        Ok(Self { conv: Conv2d::load(vb.pp("conv"), channels, channels, 3, ConvGeometry::same(3))? })
    }

    /// `size`: the skip's sides, when they do not halve evenly.
    pub fn forward(&self, xs: &Tensor, size: Option<(usize, usize)>) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let (h, w) = size.unwrap_or((2 * h, 2 * w));
        self.conv.forward(&xs.upsample_nearest2d(h, w)?)
    }
}
