//! The original (LDM, CompVis) tensor names of a Stable Diffusion 1.x, 2.x or XL checkpoint
//! renamed to the diffusers and transformers names the loader reads, one tensor at a time. Every
//! tensor of the UNet (`model.diffusion_model.`), the VAE (`first_stage_model.`) and the text
//! encoders (SD 1.x's CLIP `cond_stage_model.transformer.`, SD 2.x's OpenCLIP
//! `cond_stage_model.model.`, SDXL's CLIP `conditioner.embedders.0.transformer.` and OpenCLIP
//! `conditioner.embedders.1.model.`) must map, or the import is refused naming it; everything
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
//!        label_emb.0.{0,2} (SDXL)    → add_embedding.linear_{1,2}
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
//! OpenCLIP (SD 2.x), under cond_stage_model.model. and text_model. (N resblocks):
//!        token_embedding, positional_embedding, ln_final
//!                                    → embeddings.token_embedding, embeddings.position_embedding,
//!                                      final_layer_norm
//!        transformer.resblocks.i (i < N-1) → encoder.layers.i: ln_{1,2} → layer_norm{1,2},
//!                                      attn.out_proj → self_attn.out_proj, mlp.c_{fc,proj} → mlp.fc{1,2},
//!                                      attn.in_proj_{weight,bias} [3h, …] → self_attn.{q,k,v}_proj,
//!                                      its three row slices
//!        transformer.resblocks.(N-1), text_projection, logit_scale: left out
//! SDXL   conditioner.embedders.0.transformer.X → text_encoder: as CLIP above
//!        conditioner.embedders.1.model.X → text_encoder_2: as OpenCLIP above, but every resblock
//!                                      kept (SDXL takes the penultimate hidden state itself and
//!                                      pools the last), and text_projection [h, p] → the
//!                                      transposed text_projection.weight [p, h]; logit_scale left out
//! ```
//! (The UNet names are the same in SD 2.x; its attention `proj_in`/`proj_out` are linear, 2-D
//! weights, and copied as they are.)
//!
//! L (resnets per level) and the number of levels are read from the tensors: one downsampler per
//! level but the last, L+1 output blocks per level.

use std::collections::{BTreeMap, BTreeSet};

use super::CheckpointFamily;
use super::safetensors_io::{OutTensor, SourceTensor, SourceTensors};

pub(crate) const UNET_PREFIX: &str = "model.diffusion_model.";
pub(crate) const VAE_PREFIX: &str = "first_stage_model.";
pub(crate) const CLIP_PREFIX: &str = "cond_stage_model.transformer.";
/// SD 2.x's OpenCLIP ViT-H text encoder.
pub(crate) const OPEN_CLIP_PREFIX: &str = "cond_stage_model.model.";
/// SDXL's first text encoder, CLIP ViT-L.
pub(crate) const XL_CLIP_PREFIX: &str = "conditioner.embedders.0.transformer.";
/// SDXL's second text encoder, OpenCLIP ViT-bigG.
pub(crate) const XL_OPEN_CLIP_PREFIX: &str = "conditioner.embedders.1.model.";
/// The SDXL refiner's only text encoder (OpenCLIP ViT-bigG in the first slot).
pub(crate) const REFINER_PREFIX: &str = "conditioner.embedders.0.model.";
/// OpenCLIP's residual blocks, under [`OPEN_CLIP_PREFIX`].
pub(crate) const RESBLOCKS: &str = "transformer.resblocks.";

/// The output tensors of each component, by diffusers name.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub unet: BTreeMap<String, OutTensor>,
    pub vae: BTreeMap<String, OutTensor>,
    pub text_encoder: BTreeMap<String, OutTensor>,
    /// SDXL's second text encoder (empty for SD 1.x and 2.x).
    pub text_encoder_2: BTreeMap<String, OutTensor>,
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

/// The diffusers name of a UNet tensor (`rest` is after [`UNET_PREFIX`]); `added` says whether
/// the UNet has SDXL's added conditioning (`label_emb`).
fn unet_name(rest: &str, levels: &UnetLevels, added: bool) -> Option<String> {
    let parts: Vec<&str> = rest.splitn(4, '.').collect();
    let renamed = match parts.as_slice() {
        ["label_emb", "0", "0", param] if added => format!("add_embedding.linear_1.{param}"),
        ["label_emb", "0", "2", param] if added => format!("add_embedding.linear_2.{param}"),
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

/// The VAE attention's 1×1 convolutions as linear weights: `[c, c, 1, 1]` → `[c, c]`, same bytes.
fn linear_from_conv(name: &str, mut tensor: OutTensor) -> OutTensor {
    let attention = name.contains(".mid_block.attentions.0.") && name.ends_with(".weight");
    if attention && tensor.shape.len() > 2 && tensor.shape[2..].iter().all(|&d| d == 1) {
        tensor.shape.truncate(2);
    }
    tensor
}

/// How many resblocks the OpenCLIP text encoder under `encoder` (a prefix) has.
pub(crate) fn open_clip_blocks(tensors: &SourceTensors, encoder: &str) -> usize {
    let prefix = format!("{encoder}{RESBLOCKS}");
    tensors
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix)?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |last| last + 1)
}

/// What becomes of an OpenCLIP text encoder tensor (`rest` after its prefix).
#[derive(Debug, PartialEq, Eq)]
enum OpenClip {
    /// Copied under this transformers name.
    Renamed(String),
    /// A fused `in_proj` weight or bias: its three row slices are q, k and v under these names.
    Fused([String; 3]),
    /// The projection `[h, p]` (OpenCLIP multiplies `x @ text_projection`), transposed into this
    /// linear weight `[p, h]`.
    Transposed(String),
    /// Not part of the transformers model: the contrastive temperature, and for SD 2.x the last
    /// resblock (SD 2.x conditions on the penultimate layer's output, so diffusers' conversion
    /// keeps one block fewer) and the projection to the joint image-text space.
    Unused,
}

/// Which OpenCLIP text encoder is being converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenClipRole {
    /// SD 2.x's, to a `CLIPTextModel` of one block fewer than the checkpoint's `blocks`.
    Penultimate { blocks: usize },
    /// SDXL's second, to a `CLIPTextModelWithProjection` of every block.
    WithProjection,
}

/// The transformers name(s) of an OpenCLIP tensor.
fn open_clip_name(rest: &str, role: OpenClipRole) -> Option<OpenClip> {
    let top = match rest {
        "token_embedding.weight" => Some("embeddings.token_embedding.weight"),
        "positional_embedding" => Some("embeddings.position_embedding.weight"),
        "ln_final.weight" => Some("final_layer_norm.weight"),
        "ln_final.bias" => Some("final_layer_norm.bias"),
        "text_projection" if role == OpenClipRole::WithProjection => {
            return Some(OpenClip::Transposed("text_projection.weight".into()));
        }
        "text_projection" | "logit_scale" => return Some(OpenClip::Unused),
        _ => None,
    };
    if let Some(name) = top {
        return Some(OpenClip::Renamed(format!("text_model.{name}")));
    }
    let (index, inner) = rest.strip_prefix(RESBLOCKS)?.split_once('.')?;
    let index: usize = index.parse().ok()?;
    if role == (OpenClipRole::Penultimate { blocks: index + 1 }) {
        return Some(OpenClip::Unused);
    }
    let layer = format!("text_model.encoder.layers.{index}");
    if let Some(param) = inner.strip_prefix("attn.in_proj_") {
        if param != "weight" && param != "bias" {
            return None;
        }
        return Some(OpenClip::Fused(["q", "k", "v"].map(|p| format!("{layer}.self_attn.{p}_proj.{param}"))));
    }
    let (module, param) = inner.rsplit_once('.')?;
    let module = match module {
        "ln_1" => "layer_norm1",
        "ln_2" => "layer_norm2",
        "attn.out_proj" => "self_attn.out_proj",
        "mlp.c_fc" => "mlp.fc1",
        "mlp.c_proj" => "mlp.fc2",
        _ => return None,
    };
    (param == "weight" || param == "bias").then(|| OpenClip::Renamed(format!("{layer}.{module}.{param}")))
}

/// The three contiguous row slices of a fused q, k, v tensor (`[3h, …]`), same bytes.
fn split_fused(tensor: &SourceTensor) -> Option<[OutTensor; 3]> {
    let rows = *tensor.shape.first()?;
    if !rows.is_multiple_of(3) || !tensor.len.is_multiple_of(3) {
        return None;
    }
    let mut shape = tensor.shape.clone();
    shape[0] = rows / 3;
    let len = tensor.len / 3;
    Some([0, 1, 2].map(|i| OutTensor {
        shape: shape.clone(),
        start: tensor.start + i * len,
        len,
        ..OutTensor::copy_of(tensor)
    }))
}

/// A text encoder of a checkpoint: where its tensors are, how they are named, where they go.
#[derive(Debug, Clone, Copy)]
struct TextEncoder {
    prefix: &'static str,
    /// OpenCLIP names (and how to convert them), or else transformers' CLIP names.
    open_clip: Option<OpenClipRole>,
    /// SDXL's `text_encoder_2`, or else `text_encoder`.
    second: bool,
}

/// The text encoders of a family's checkpoints.
fn text_encoders(family: CheckpointFamily, tensors: &SourceTensors) -> Vec<TextEncoder> {
    let clip = |prefix| TextEncoder { prefix, open_clip: None, second: false };
    match family {
        CheckpointFamily::Sd1 => vec![clip(CLIP_PREFIX)],
        CheckpointFamily::Sd2 => {
            let role = OpenClipRole::Penultimate { blocks: open_clip_blocks(tensors, OPEN_CLIP_PREFIX) };
            vec![TextEncoder { prefix: OPEN_CLIP_PREFIX, open_clip: Some(role), second: false }]
        }
        CheckpointFamily::Sdxl => vec![
            clip(XL_CLIP_PREFIX),
            TextEncoder {
                prefix: XL_OPEN_CLIP_PREFIX,
                open_clip: Some(OpenClipRole::WithProjection),
                second: true,
            },
        ],
    }
}

/// What becomes of one checkpoint tensor.
enum Mapped {
    /// These output tensors (one, or a fused tensor's three slices) of this component.
    To(Component, Vec<(String, OutTensor)>),
    /// Not part of the model: counted, left out.
    Ignored,
    /// Under a model prefix, but no name of the family's: the import is refused.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Component {
    Unet,
    Vae,
    TextEncoder,
    TextEncoder2,
}

/// Maps one text encoder tensor (`rest` after the encoder's prefix).
fn map_text(encoder: TextEncoder, rest: &str, tensor: &SourceTensor) -> Mapped {
    let component = if encoder.second { Component::TextEncoder2 } else { Component::TextEncoder };
    let Some(role) = encoder.open_clip else {
        // A buffer older transformers saved with the weights, not a weight.
        if rest.ends_with("embeddings.position_ids") {
            return Mapped::Ignored;
        }
        return Mapped::To(component, vec![(clip_name(rest), OutTensor::copy_of(tensor))]);
    };
    match open_clip_name(rest, role) {
        Some(OpenClip::Renamed(name)) => Mapped::To(component, vec![(name, OutTensor::copy_of(tensor))]),
        Some(OpenClip::Fused(names)) => match split_fused(tensor) {
            Some(parts) => Mapped::To(component, names.into_iter().zip(parts).collect()),
            None => Mapped::Unknown,
        },
        Some(OpenClip::Transposed(name)) => match OutTensor::transpose_of(tensor) {
            Some(out) => Mapped::To(component, vec![(name, out)]),
            None => Mapped::Unknown,
        },
        Some(OpenClip::Unused) => Mapped::Ignored,
        None => Mapped::Unknown,
    }
}

/// Plans the conversion of every tensor of a `family` checkpoint; the error names the first
/// tensors that do not map.
pub(crate) fn plan(tensors: &SourceTensors, family: CheckpointFamily) -> Result<Plan, String> {
    let levels = UnetLevels::read(tensors)?;
    let up_levels = vae_up_levels(tensors);
    let encoders = text_encoders(family, tensors);
    let added = family == CheckpointFamily::Sdxl;
    let mut plan = Plan::default();
    let mut unknown = Vec::new();
    for (name, tensor) in tensors {
        let mapped = if let Some(rest) = name.strip_prefix(UNET_PREFIX) {
            match unet_name(rest, &levels, added) {
                Some(name) => Mapped::To(Component::Unet, vec![(name, OutTensor::copy_of(tensor))]),
                None => Mapped::Unknown,
            }
        } else if let Some(rest) = name.strip_prefix(VAE_PREFIX) {
            match vae_name(rest, up_levels) {
                Some(name) => {
                    let out = linear_from_conv(&name, OutTensor::copy_of(tensor));
                    Mapped::To(Component::Vae, vec![(name, out)])
                }
                None => Mapped::Unknown,
            }
        } else if let Some((encoder, rest)) =
            encoders.iter().find_map(|e| Some((*e, name.strip_prefix(e.prefix)?)))
        {
            map_text(encoder, rest, tensor)
        } else {
            Mapped::Ignored
        };
        match mapped {
            Mapped::To(component, out) => {
                let target = match component {
                    Component::Unet => &mut plan.unet,
                    Component::Vae => &mut plan.vae,
                    Component::TextEncoder => &mut plan.text_encoder,
                    Component::TextEncoder2 => &mut plan.text_encoder_2,
                };
                target.extend(out);
            }
            Mapped::Ignored => *plan.ignored.entry(name_group(name)).or_default() += 1,
            Mapped::Unknown => unknown.push(name.clone()),
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
        return Err(format!(
            "{} tensors have names that are not {}'s ({}{})",
            unknown.len(),
            family.label(),
            shown.join(", "),
            if unknown.len() > 5 { ", …" } else { "" }
        ));
    }
    Ok(plan)
}

/// The group an ignored tensor is counted under: its first name segment, or for an OpenCLIP
/// tensor its name up to the block (`cond_stage_model.model.transformer.resblocks.23`).
fn name_group(name: &str) -> String {
    let open_clip =
        [OPEN_CLIP_PREFIX, XL_OPEN_CLIP_PREFIX].into_iter().find_map(|p| Some((p, name.strip_prefix(p)?)));
    match open_clip {
        Some((prefix, rest)) if rest.starts_with(RESBLOCKS) => {
            let index = rest[RESBLOCKS.len()..].split('.').next().unwrap_or_default();
            format!("{prefix}{RESBLOCKS}{index}")
        }
        Some((prefix, rest)) => format!("{prefix}{rest}"),
        None => name.split('.').next().unwrap_or_default().to_string(),
    }
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
            assert_eq!(unet_name(ldm, &levels, false).as_deref(), Some(diffusers), "{ldm}");
        }
        for bad in
            ["input_blocks.1.0.in_layers.1.weight", "label_emb.0.0.weight", "input_blocks.x.0.op.weight"]
        {
            assert_eq!(unet_name(bad, &levels, false), None, "{bad}");
        }
        // SDXL's added conditioning.
        assert_eq!(
            unet_name("label_emb.0.2.bias", &levels, true).as_deref(),
            Some("add_embedding.linear_2.bias")
        );
        assert_eq!(unet_name("label_emb.0.1.bias", &levels, true), None);
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
    fn open_clip_names_are_transformers_and_the_last_block_is_left_out() {
        let sd2 = OpenClipRole::Penultimate { blocks: 24 };
        let renamed = |rest: &str| match open_clip_name(rest, sd2) {
            Some(OpenClip::Renamed(name)) => name,
            other => panic!("{rest}: {other:?}"),
        };
        assert_eq!(renamed("token_embedding.weight"), "text_model.embeddings.token_embedding.weight");
        assert_eq!(renamed("positional_embedding"), "text_model.embeddings.position_embedding.weight");
        assert_eq!(renamed("ln_final.bias"), "text_model.final_layer_norm.bias");
        assert_eq!(
            renamed("transformer.resblocks.0.ln_1.weight"),
            "text_model.encoder.layers.0.layer_norm1.weight"
        );
        assert_eq!(
            renamed("transformer.resblocks.22.attn.out_proj.bias"),
            "text_model.encoder.layers.22.self_attn.out_proj.bias"
        );
        assert_eq!(
            renamed("transformer.resblocks.3.mlp.c_fc.weight"),
            "text_model.encoder.layers.3.mlp.fc1.weight"
        );
        assert_eq!(
            renamed("transformer.resblocks.3.mlp.c_proj.bias"),
            "text_model.encoder.layers.3.mlp.fc2.bias"
        );
        assert_eq!(
            open_clip_name("transformer.resblocks.1.attn.in_proj_bias", sd2),
            Some(OpenClip::Fused(
                ["q", "k", "v"].map(|p| format!("text_model.encoder.layers.1.self_attn.{p}_proj.bias"))
            ))
        );
        for unused in ["transformer.resblocks.23.ln_2.weight", "text_projection", "logit_scale"] {
            assert_eq!(open_clip_name(unused, sd2), Some(OpenClip::Unused), "{unused}");
        }
        // SDXL's second encoder keeps its last block and its projection, transposed.
        let xl = OpenClipRole::WithProjection;
        assert_eq!(
            open_clip_name("transformer.resblocks.23.ln_2.weight", xl),
            Some(OpenClip::Renamed("text_model.encoder.layers.23.layer_norm2.weight".into()))
        );
        assert_eq!(
            open_clip_name("text_projection", xl),
            Some(OpenClip::Transposed("text_projection.weight".into()))
        );
        assert_eq!(open_clip_name("logit_scale", xl), Some(OpenClip::Unused));
        for bad in [
            "transformer.resblocks.1.attn.in_proj_scale",
            "transformer.resblocks.1.mlp.c_x.weight",
            "ln_post.weight",
        ] {
            assert_eq!(open_clip_name(bad, sd2), None, "{bad}");
        }
    }

    #[test]
    fn fused_attention_splits_into_row_slices() {
        let fused = SourceTensor { dtype: "F16".into(), shape: vec![96, 32], start: 1000, len: 96 * 32 * 2 };
        let [q, k, v] = split_fused(&fused).unwrap();
        for (part, start) in [(q, 1000), (k, 1000 + 2048), (v, 1000 + 4096)] {
            assert_eq!((part.shape, part.start, part.len), (vec![32, 32], start, 2048));
        }
        let odd = SourceTensor { dtype: "F16".into(), shape: vec![32, 32], start: 0, len: 2048 };
        assert!(split_fused(&odd).is_none());
    }

    #[test]
    fn attention_convolutions_become_linear() {
        let tensor =
            OutTensor { dtype: "F32".into(), shape: vec![8, 8, 1, 1], start: 0, len: 256, transposed: false };
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
