//! The original (LDM, CompVis) tensor names of a Stable Diffusion 1.x checkpoint renamed to the
//! diffusers and transformers names the loader reads, one tensor at a time. Every tensor of the
//! UNet (`model.diffusion_model.`), the VAE (`first_stage_model.`) and the CLIP text encoder
//! (`cond_stage_model.transformer.`) must map, or the import is refused naming it; everything
//! else (EMA copies, the training schedule buffers) is left out and counted.
//!
//! ```text
//! UNet   time_embed.{0,2}            → time_embedding.linear_{1,2}
//!        input_blocks.0.0            → conv_in;   out.{0,2} → conv_norm_out, conv_out
//!        input_blocks.i.0 (i ≥ 1)    → down_blocks.b.resnets.l      b, l = (i-1) div/mod (L+1)
//!        input_blocks.i.0.op         → down_blocks.b.downsamplers.0.conv
//!        input_blocks.i.1            → down_blocks.b.attentions.l   (inside: same names)
//!        middle_block.{0,1,2}        → mid_block.{resnets.0, attentions.0, resnets.1}
//!        output_blocks.i.0           → up_blocks.b.resnets.l        b, l = i div/mod (L+1)
//!        output_blocks.i.1           → up_blocks.b.attentions.l, or .upsamplers.0 when `conv`
//!        output_blocks.i.2.conv      → up_blocks.b.upsamplers.0.conv
//!        resnets: in_layers.{0,2} → norm1, conv1; emb_layers.1 → time_emb_proj;
//!                 out_layers.{0,3} → norm2, conv2; skip_connection → conv_shortcut
//! VAE    {en,de}coder.norm_out       → conv_norm_out
//!        encoder.down.i.block.j      → encoder.down_blocks.i.resnets.j (nin_shortcut → conv_shortcut)
//!        encoder.down.i.downsample   → encoder.down_blocks.i.downsamplers.0
//!        decoder.up.i.block.j        → decoder.up_blocks.(n-1-i).resnets.j (levels reversed)
//!        decoder.up.i.upsample       → decoder.up_blocks.(n-1-i).upsamplers.0
//!        mid.block_{1,2}, mid.attn_1 → mid_block.resnets.{0,1}, mid_block.attentions.0
//!        attn_1.{norm,q,k,v,proj_out} → group_norm, to_q, to_k, to_v, to_out.0; the 1×1
//!                                       convolution weights [c, c, 1, 1] become linear [c, c]
//! CLIP   cond_stage_model.transformer.[text_model.]X → text_model.X (position_ids left out)
//! ```
//!
//! L (resnets per level) and the number of levels are read from the tensors: one downsampler per
//! level but the last, L+1 output blocks per level.

use std::collections::{BTreeMap, BTreeSet};

use super::safetensors_io::{OutTensor, SourceTensor, SourceTensors};

pub(crate) const UNET_PREFIX: &str = "model.diffusion_model.";
pub(crate) const VAE_PREFIX: &str = "first_stage_model.";
pub(crate) const CLIP_PREFIX: &str = "cond_stage_model.transformer.";

/// The output tensors of each component, by diffusers name.
#[derive(Debug, Default)]
pub(crate) struct Sd1Plan {
    pub unet: BTreeMap<String, OutTensor>,
    pub vae: BTreeMap<String, OutTensor>,
    pub text_encoder: BTreeMap<String, OutTensor>,
    /// Checkpoint tensors outside the three networks, by first name segment, with their count.
    pub ignored: BTreeMap<String, usize>,
}

/// The UNet's level structure, read from its tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnetLevels {
    pub levels: usize,
    pub layers_per_block: usize,
}

impl UnetLevels {
    /// Counts downsamplers and output blocks under [`UNET_PREFIX`].
    pub fn read(tensors: &SourceTensors) -> Result<Self, String> {
        let mut inputs = BTreeSet::new();
        let mut outputs = BTreeSet::new();
        let mut downsamplers = 0;
        for rest in tensors.keys().filter_map(|k| k.strip_prefix(UNET_PREFIX)) {
            let parts: Vec<&str> = rest.splitn(4, '.').collect();
            match parts.as_slice() {
                ["input_blocks", i, "0", "op.weight"] => {
                    downsamplers += 1;
                    inputs.insert(i.to_string());
                }
                ["input_blocks", i, ..] => _ = inputs.insert(i.to_string()),
                ["output_blocks", i, ..] => _ = outputs.insert(i.to_string()),
                _ => {}
            }
        }
        let levels = downsamplers + 1;
        let per_level = outputs.len() / levels;
        if per_level < 2 || per_level * levels != outputs.len() || inputs.len() != per_level * levels {
            return Err(format!(
                "the UNet's blocks ({} input, {} output, {downsamplers} downsamplers) are not a Stable \
                 Diffusion UNet",
                inputs.len(),
                outputs.len()
            ));
        }
        Ok(Self { levels, layers_per_block: per_level - 1 })
    }

    /// Level and layer of `input_blocks.i` (i ≥ 1).
    pub fn input(&self, i: usize) -> (usize, usize) {
        ((i - 1) / (self.layers_per_block + 1), (i - 1) % (self.layers_per_block + 1))
    }

    /// Level (in up order) and layer of `output_blocks.i`.
    pub fn output(&self, i: usize) -> (usize, usize) {
        (i / (self.layers_per_block + 1), i % (self.layers_per_block + 1))
    }
}

/// A UNet resnet's inner name: `in_layers.0.weight` → `norm1.weight`.
fn unet_resnet(rest: &str) -> Option<String> {
    let (layer, param) = match rest.split_once('.')? {
        ("skip_connection", param) => ("conv_shortcut", param),
        (group, rest) => {
            let (index, param) = rest.split_once('.')?;
            let layer = match (group, index) {
                ("in_layers", "0") => "norm1",
                ("in_layers", "2") => "conv1",
                ("emb_layers", "1") => "time_emb_proj",
                ("out_layers", "0") => "norm2",
                ("out_layers", "3") => "conv2",
                _ => return None,
            };
            (layer, param)
        }
    };
    Some(format!("{layer}.{param}"))
}

/// The diffusers name of a UNet tensor (`rest` is after [`UNET_PREFIX`]).
fn unet_name(rest: &str, levels: &UnetLevels) -> Option<String> {
    let parts: Vec<&str> = rest.splitn(4, '.').collect();
    let renamed = match parts.as_slice() {
        ["time_embed", "0", param] => format!("time_embedding.linear_1.{param}"),
        ["time_embed", "2", param] => format!("time_embedding.linear_2.{param}"),
        ["input_blocks", "0", "0", param] => format!("conv_in.{param}"),
        ["out", "0", param] => format!("conv_norm_out.{param}"),
        ["out", "2", param] => format!("conv_out.{param}"),
        ["input_blocks", i, j, inner] => {
            let (level, layer) = levels.input(i.parse::<usize>().ok().filter(|&i| i >= 1)?);
            let block = format!("down_blocks.{level}");
            match (*j, inner.strip_prefix("op.")) {
                ("0", Some(param)) => format!("{block}.downsamplers.0.conv.{param}"),
                ("0", None) => format!("{block}.resnets.{layer}.{}", unet_resnet(inner)?),
                ("1", None) => format!("{block}.attentions.{layer}.{inner}"),
                _ => return None,
            }
        }
        ["middle_block", "0", first, rest] => {
            format!("mid_block.resnets.0.{}", unet_resnet(&format!("{first}.{rest}"))?)
        }
        ["middle_block", "1", first, rest] => format!("mid_block.attentions.0.{first}.{rest}"),
        ["middle_block", "2", first, rest] => {
            format!("mid_block.resnets.1.{}", unet_resnet(&format!("{first}.{rest}"))?)
        }
        ["output_blocks", i, j, inner] => {
            let (level, layer) = levels.output(i.parse().ok()?);
            let block = format!("up_blocks.{level}");
            match (*j, inner.strip_prefix("conv.")) {
                ("0", _) => format!("{block}.resnets.{layer}.{}", unet_resnet(inner)?),
                ("1" | "2", Some(param)) => format!("{block}.upsamplers.0.conv.{param}"),
                ("1", None) => format!("{block}.attentions.{layer}.{inner}"),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(renamed)
}

/// A VAE resnet's or mid attention's inner name.
fn vae_inner(rest: &str, attention: bool) -> Option<String> {
    let (layer, param) = rest.split_once('.')?;
    let layer = match (attention, layer) {
        (false, "nin_shortcut") => "conv_shortcut",
        (false, "norm1" | "conv1" | "norm2" | "conv2") => layer,
        (true, "norm") => "group_norm",
        (true, "q") => "to_q",
        (true, "k") => "to_k",
        (true, "v") => "to_v",
        (true, "proj_out") => "to_out.0",
        _ => return None,
    };
    Some(format!("{layer}.{param}"))
}

/// The diffusers name of a VAE tensor (`rest` is after [`VAE_PREFIX`]); `up_levels` is the
/// decoder's number of levels (LDM numbers them from the bottom, diffusers from the top).
fn vae_name(rest: &str, up_levels: usize) -> Option<String> {
    let parts: Vec<&str> = rest.splitn(5, '.').collect();
    let renamed = match parts.as_slice() {
        ["quant_conv" | "post_quant_conv", ..] => rest.to_string(),
        ["encoder" | "decoder", "conv_in" | "conv_out", _] => rest.to_string(),
        [coder @ ("encoder" | "decoder"), "norm_out", param] => format!("{coder}.conv_norm_out.{param}"),
        [coder @ ("encoder" | "decoder"), "mid", block, first, param] => {
            let inner = format!("{first}.{param}");
            match *block {
                "block_1" => format!("{coder}.mid_block.resnets.0.{}", vae_inner(&inner, false)?),
                "block_2" => format!("{coder}.mid_block.resnets.1.{}", vae_inner(&inner, false)?),
                "attn_1" => format!("{coder}.mid_block.attentions.0.{}", vae_inner(&inner, true)?),
                _ => return None,
            }
        }
        ["encoder", "down", i, "block", inner] => {
            let (j, inner) = inner.split_once('.')?;
            format!("encoder.down_blocks.{i}.resnets.{j}.{}", vae_inner(inner, false)?)
        }
        ["encoder", "down", i, "downsample", inner] => {
            format!("encoder.down_blocks.{i}.downsamplers.0.conv.{}", inner.strip_prefix("conv.")?)
        }
        ["decoder", "up", i, kind, inner] => {
            let level = up_levels.checked_sub(1)?.checked_sub(i.parse().ok()?)?;
            match *kind {
                "block" => {
                    let (j, inner) = inner.split_once('.')?;
                    format!("decoder.up_blocks.{level}.resnets.{j}.{}", vae_inner(inner, false)?)
                }
                "upsample" => {
                    format!("decoder.up_blocks.{level}.upsamplers.0.conv.{}", inner.strip_prefix("conv.")?)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(renamed)
}

/// The transformers name of a CLIP text encoder tensor (`rest` after [`CLIP_PREFIX`]): older
/// checkpoints lack the `text_model.` level.
fn clip_name(rest: &str) -> String {
    format!("text_model.{}", rest.strip_prefix("text_model.").unwrap_or(rest))
}

fn copied(tensor: &SourceTensor) -> OutTensor {
    OutTensor {
        dtype: tensor.dtype.clone(),
        shape: tensor.shape.clone(),
        start: tensor.start,
        len: tensor.len,
    }
}

/// The VAE attention's 1×1 convolutions as linear weights: `[c, c, 1, 1]` → `[c, c]`, same bytes.
fn linear_from_conv(name: &str, mut tensor: OutTensor) -> OutTensor {
    let attention = name.contains(".mid_block.attentions.0.") && name.ends_with(".weight");
    if attention && tensor.shape.len() > 2 && tensor.shape[2..].iter().all(|&d| d == 1) {
        tensor.shape.truncate(2);
    }
    tensor
}

/// Plans the SD 1.x conversion of every tensor; the error names the first tensors that do not
/// map.
pub(crate) fn plan_sd1(tensors: &SourceTensors) -> Result<Sd1Plan, String> {
    let levels = UnetLevels::read(tensors)?;
    let up_levels = vae_up_levels(tensors);
    let mut plan = Sd1Plan::default();
    let mut unknown = Vec::new();
    for (name, tensor) in tensors {
        let (target, renamed) = if let Some(rest) = name.strip_prefix(UNET_PREFIX) {
            (&mut plan.unet, unet_name(rest, &levels))
        } else if let Some(rest) = name.strip_prefix(VAE_PREFIX) {
            (&mut plan.vae, vae_name(rest, up_levels))
        } else if let Some(rest) = name.strip_prefix(CLIP_PREFIX) {
            // A buffer older transformers saved with the weights, not a weight.
            if rest.ends_with("embeddings.position_ids") {
                continue;
            }
            (&mut plan.text_encoder, Some(clip_name(rest)))
        } else {
            let group = name.split('.').next().unwrap_or_default().to_string();
            *plan.ignored.entry(group).or_default() += 1;
            continue;
        };
        match renamed {
            Some(renamed) => {
                let out = linear_from_conv(&renamed, copied(tensor));
                target.insert(renamed, out);
            }
            None => unknown.push(name.clone()),
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
        return Err(format!(
            "{} tensors have names that are not SD 1.x's ({}{})",
            unknown.len(),
            shown.join(", "),
            if unknown.len() > 5 { ", …" } else { "" }
        ));
    }
    Ok(plan)
}

/// The decoder's number of levels: distinct `decoder.up.i`.
pub(crate) fn vae_up_levels(tensors: &SourceTensors) -> usize {
    let prefix = format!("{VAE_PREFIX}decoder.up.");
    let levels: BTreeSet<&str> =
        tensors.keys().filter_map(|k| k.strip_prefix(&prefix)).filter_map(|r| r.split('.').next()).collect();
    levels.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unet_names_follow_the_block_arithmetic() {
        // SD 1.5: 4 levels of 2 resnets.
        let levels = UnetLevels { levels: 4, layers_per_block: 2 };
        for (ldm, diffusers) in [
            ("time_embed.2.bias", "time_embedding.linear_2.bias"),
            ("input_blocks.0.0.weight", "conv_in.weight"),
            ("input_blocks.2.0.in_layers.2.weight", "down_blocks.0.resnets.1.conv1.weight"),
            ("input_blocks.3.0.op.bias", "down_blocks.0.downsamplers.0.conv.bias"),
            ("input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"),
            (
                "input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight",
                "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight",
            ),
            ("middle_block.2.emb_layers.1.weight", "mid_block.resnets.1.time_emb_proj.weight"),
            ("middle_block.1.proj_out.bias", "mid_block.attentions.0.proj_out.bias"),
            ("output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"),
            ("output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"),
            ("output_blocks.5.1.norm.weight", "up_blocks.1.attentions.2.norm.weight"),
            ("output_blocks.11.0.out_layers.3.weight", "up_blocks.3.resnets.2.conv2.weight"),
            ("out.0.weight", "conv_norm_out.weight"),
        ] {
            assert_eq!(unet_name(ldm, &levels).as_deref(), Some(diffusers), "{ldm}");
        }
        for bad in
            ["input_blocks.1.0.in_layers.1.weight", "label_emb.0.0.weight", "input_blocks.x.0.op.weight"]
        {
            assert_eq!(unet_name(bad, &levels), None, "{bad}");
        }
    }

    #[test]
    fn vae_names_reverse_the_decoder_levels() {
        for (ldm, diffusers) in [
            ("encoder.norm_out.bias", "encoder.conv_norm_out.bias"),
            (
                "encoder.down.1.block.0.nin_shortcut.weight",
                "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
            ),
            ("encoder.down.2.downsample.conv.weight", "encoder.down_blocks.2.downsamplers.0.conv.weight"),
            ("decoder.up.3.block.2.conv1.bias", "decoder.up_blocks.0.resnets.2.conv1.bias"),
            ("decoder.up.1.upsample.conv.weight", "decoder.up_blocks.2.upsamplers.0.conv.weight"),
            ("decoder.mid.attn_1.proj_out.weight", "decoder.mid_block.attentions.0.to_out.0.weight"),
            ("encoder.mid.block_2.norm2.weight", "encoder.mid_block.resnets.1.norm2.weight"),
            ("post_quant_conv.bias", "post_quant_conv.bias"),
        ] {
            assert_eq!(vae_name(ldm, 4).as_deref(), Some(diffusers), "{ldm}");
        }
        assert_eq!(vae_name("decoder.up.4.block.0.conv1.bias", 4), None);
        assert_eq!(vae_name("encoder.mid.attn_1.query.weight", 4), None);
    }

    #[test]
    fn clip_names_gain_text_model() {
        assert_eq!(clip_name("text_model.final_layer_norm.weight"), "text_model.final_layer_norm.weight");
        assert_eq!(clip_name("encoder.layers.0.mlp.fc1.bias"), "text_model.encoder.layers.0.mlp.fc1.bias");
    }

    #[test]
    fn attention_convolutions_become_linear() {
        let tensor = OutTensor { dtype: "F32".into(), shape: vec![8, 8, 1, 1], start: 0, len: 256 };
        assert_eq!(
            linear_from_conv("decoder.mid_block.attentions.0.to_q.weight", tensor.clone()).shape,
            [8, 8]
        );
        assert_eq!(
            linear_from_conv("decoder.mid_block.attentions.0.to_q.bias", tensor.clone()).shape,
            [8, 8, 1, 1]
        );
        assert_eq!(linear_from_conv("decoder.conv_in.weight", tensor).shape, [8, 8, 1, 1]);
    }
}
