//! The CLIP text transformer that turns token ids into the embeddings the UNet attends to.
//!
//! Same network and weight names as transformers' `CLIPTextModel` (`text_model.embeddings…`,
//! `text_model.encoder.layers.N…`, `text_model.final_layer_norm`), so SD's `text_encoder` weights
//! load unchanged. [`ClipWeightNames`] tells from a file's tensor names whether they carry the
//! `text_model.` prefix (transformers 4, and `CLIPTextModelWithProjection`) or not (transformers
//! 5's `CLIPTextModel`), and refuses tensors of anything else by name. It lives here rather than
//! in candle-transformers because that crate's SD
//! `clip::Config` cannot be built for any size but its presets, and the test model needs one.
//! `gelu` is the exact (erf) GELU, as in transformers.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

/// The activation in the MLP blocks (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `x · sigmoid(1.702 x)` (OpenAI CLIP, SD 1.x, SDXL's first encoder).
    QuickGelu,
    /// Exact GELU (OpenCLIP: SD 2.x, SDXL's second encoder).
    Gelu,
    /// Tanh-approximated GELU.
    GeluTanh,
}

impl Activation {
    fn forward(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Activation::Gelu => xs.gelu_erf(),
            Activation::GeluTanh => xs.gelu(),
        }
    }
}

/// The subset of transformers' `CLIPTextConfig` the network needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
    /// Where the pooled output is taken (see [`ClipTextModel::pooled`]).
    pub eos_token_id: u32,
    /// Width of `text_projection` (`CLIPTextModelWithProjection` only).
    pub projection_dim: usize,
}

/// Which hidden state conditions the UNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClipOutput {
    /// The last layer's output after the final layer norm (SD 1.x and 2.x).
    LastHiddenState,
    /// The second-to-last layer's output, no final norm (SDXL: `hidden_states[-2]`).
    Penultimate,
    /// The penultimate output as above, and the pooled output through `text_projection`
    /// (SDXL's second encoder, a `CLIPTextModelWithProjection`: its `text_embeds`).
    PenultimateAndPooled,
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(vb: VarBuilder, c: &ClipTextConfig) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            q_proj: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(d, d, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out_proj: candle_nn::linear(d, d, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
            head_dim: d / c.num_attention_heads,
        })
    }

    /// `xs`: `[batch, seq, hidden]`; `mask`: `[seq, seq]`, 0 or −∞.
    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq, hidden) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = split((self.q_proj.forward(xs)? * scale)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = weights.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, hidden))?;
        self.out_proj.forward(&out)
    }
}

struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_norm2: LayerNorm,
    activation: Activation,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &ClipTextConfig) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            self_attn: Attention::new(vb.pp("self_attn"), c)?,
            layer_norm1: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            fc1: candle_nn::linear(d, c.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, d, vb.pp("mlp.fc2"))?,
            layer_norm2: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            activation: c.activation,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let attended = self.self_attn.forward(&self.layer_norm1.forward(xs)?, mask)?;
        let xs = (xs + attended)?;
        let hidden = self.fc1.forward(&self.layer_norm2.forward(&xs)?)?;
        let mlp = self.fc2.forward(&self.activation.forward(&hidden)?)?;
        xs + mlp
    }
}

/// A CLIP text encoder, cut to the layers its [`ClipOutput`] needs.
pub(crate) struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_layer_norm: Option<LayerNorm>,
    /// With [`ClipOutput::PenultimateAndPooled`]: `text_projection` (no bias) and the end token.
    projection: Option<(Linear, u32)>,
    hidden_size: usize,
}

/// A batch's embeddings: `[batch, seq, hidden]`, and `[batch, projection_dim]` where pooled.
pub(crate) struct ClipEmbeddings {
    pub hidden: Tensor,
    pub pooled: Option<Tensor>,
}

impl ClipTextModel {
    /// Builds the encoder from weights named as in transformers, `vb` at the text model's root
    /// (`text_model` of a transformers 4 file; see [`ClipWeightNames::root`]). `file` is the
    /// file's root, where `text_projection` is (read for [`ClipOutput::PenultimateAndPooled`]).
    pub fn new(
        vb: VarBuilder,
        file: VarBuilder,
        c: &ClipTextConfig,
        output: ClipOutput,
    ) -> candle_core::Result<Self> {
        let embeddings = vb.pp("embeddings");
        let token_embedding =
            candle_nn::embedding(c.vocab_size, c.hidden_size, embeddings.pp("token_embedding"))?;
        let position_embedding = candle_nn::embedding(
            c.max_position_embeddings,
            c.hidden_size,
            embeddings.pp("position_embedding"),
        )?;
        if output != ClipOutput::LastHiddenState && c.num_hidden_layers < 2 {
            return Err(candle_core::Error::Msg(
                "the penultimate hidden state needs at least 2 layers".to_string(),
            ));
        }
        let used_layers = match output {
            ClipOutput::Penultimate => c.num_hidden_layers - 1,
            ClipOutput::LastHiddenState | ClipOutput::PenultimateAndPooled => c.num_hidden_layers,
        };
        let layers = (0..used_layers)
            .map(|i| EncoderLayer::new(vb.pp(format!("encoder.layers.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_layer_norm = match output {
            ClipOutput::LastHiddenState | ClipOutput::PenultimateAndPooled => {
                Some(candle_nn::layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("final_layer_norm"))?)
            }
            ClipOutput::Penultimate => None,
        };
        let projection = match output {
            ClipOutput::PenultimateAndPooled => Some((
                candle_nn::linear_no_bias(c.hidden_size, c.projection_dim, file.pp("text_projection"))?,
                c.eos_token_id,
            )),
            _ => None,
        };
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm,
            projection,
            hidden_size: c.hidden_size,
        })
    }

    /// Width of the pooled output, where this encoder gives one.
    pub fn pooled_dim(&self) -> Option<usize> {
        self.projection.as_ref().map(|(linear, _)| linear.weight().dims()[0])
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// `ids`: `[batch, seq]` u32 token ids; returns `[batch, seq, hidden]`.
    #[cfg(test)]
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.embed(ids)?.hidden)
    }

    /// The hidden state [`ClipOutput`] names and, with a projection, the pooled output.
    pub fn embed(&self, ids: &Tensor) -> candle_core::Result<ClipEmbeddings> {
        let seq = ids.dim(1)?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(seq, ids.device())?;
        let mut penultimate = None;
        for (i, layer) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = Some(xs.clone());
            }
            xs = layer.forward(&xs, &mask)?;
        }
        let last = match &self.final_layer_norm {
            Some(norm) => norm.forward(&xs)?,
            None => xs,
        };
        match (&self.projection, penultimate) {
            (Some((projection, eos)), Some(penultimate)) => {
                let pooled = pooled(&last, ids, *eos)?;
                Ok(ClipEmbeddings { hidden: penultimate, pooled: Some(projection.forward(&pooled)?) })
            }
            _ => Ok(ClipEmbeddings { hidden: last, pooled: None }),
        }
    }
}

/// transformers' pooled output `[batch, hidden]`: each row's state at its end token. A config
/// whose `eos_token_id` is the legacy 2 (SD 2.x, SDXL's second encoder) pools at the highest id
/// (the first if several); any other at the first `eos_token_id` (position 0 if there is none).
fn pooled(last: &Tensor, ids: &Tensor, eos: u32) -> candle_core::Result<Tensor> {
    let rows = ids.to_vec2::<u32>()?;
    let positions: Vec<u32> = rows
        .iter()
        .map(|row| {
            let at = if eos == 2 {
                let highest = row.iter().copied().max().unwrap_or(0);
                row.iter().position(|&id| id == highest)
            } else {
                row.iter().position(|&id| id == eos)
            };
            at.unwrap_or(0) as u32
        })
        .collect();
    let picked: Vec<Tensor> = positions
        .iter()
        .enumerate()
        .map(|(row, &at)| last.get(row)?.get(at as usize))
        .collect::<candle_core::Result<_>>()?;
    Tensor::stack(&picked, 0)
}

/// The prefix transformers 4 puts before every tensor of the text model.
const PREFIX: &str = "text_model.";
/// `CLIPTextModelWithProjection`'s projection of the pooled output (SDXL's second encoder, whose
/// `text_embeds` feed the UNet's added conditioning).
const PROJECTION: &str = "text_projection.weight";

/// How the tensors of a CLIP text encoder file are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClipWeightNames {
    /// `text_model.embeddings…` rather than `embeddings…`.
    pub prefixed: bool,
    /// The file has `text_projection.weight` (a `CLIPTextModelWithProjection`).
    pub projection: bool,
}

impl ClipWeightNames {
    /// Decides the naming from the file's tensor names, refusing any tensor that is not part of
    /// a CLIP text encoder of `c`'s depth (a full `CLIPModel`'s vision tower, a mix of both
    /// namings, layers the config does not have), so nothing in the file is silently ignored.
    pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>, c: &ClipTextConfig) -> Result<Self, String> {
        let names: Vec<&str> = names.into_iter().collect();
        let token_embedding = "embeddings.token_embedding.weight";
        let prefixed = names.iter().any(|n| n.strip_prefix(PREFIX) == Some(token_embedding));
        let bare = names.contains(&token_embedding);
        if prefixed == bare {
            return Err(format!(
                "{} {PREFIX}{token_embedding} and {token_embedding}: not the weights of one transformers \
                 CLIPTextModel or CLIPTextModelWithProjection",
                if prefixed { "has both" } else { "has neither" }
            ));
        }
        let mut projection = false;
        for name in names {
            if name == PROJECTION {
                projection = true;
                continue;
            }
            let inner = if prefixed { name.strip_prefix(PREFIX) } else { Some(name) };
            if !inner.is_some_and(|inner| is_text_model_tensor(inner, c.num_hidden_layers)) {
                return Err(format!(
                    "tensor {name} is not part of a {}-layer CLIP text encoder",
                    c.num_hidden_layers
                ));
            }
        }
        Ok(Self { prefixed, projection })
    }

    /// `vb` (at the file's root) moved to the text model's root.
    pub fn root<'a>(&self, vb: VarBuilder<'a>) -> VarBuilder<'a> {
        if self.prefixed { vb.pp(PREFIX.trim_end_matches('.')) } else { vb }
    }
}

/// Whether `name` (without the prefix) is a tensor of the text model with `layers` layers.
/// `embeddings.position_ids` is a buffer older transformers saved; it is not needed.
fn is_text_model_tensor(name: &str, layers: usize) -> bool {
    const TOP: [&str; 5] = [
        "embeddings.token_embedding.weight",
        "embeddings.position_embedding.weight",
        "embeddings.position_ids",
        "final_layer_norm.weight",
        "final_layer_norm.bias",
    ];
    const LAYER: [&str; 8] = [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "layer_norm1",
        "layer_norm2",
        "mlp.fc1",
        "mlp.fc2",
    ];
    if TOP.contains(&name) {
        return true;
    }
    let Some((index, rest)) = name.strip_prefix("encoder.layers.").and_then(|n| n.split_once('.')) else {
        return false;
    };
    let in_range = index.parse::<usize>().is_ok_and(|i| i < layers && index == i.to_string());
    let known = rest
        .rsplit_once('.')
        .is_some_and(|(module, param)| LAYER.contains(&module) && (param == "weight" || param == "bias"));
    in_range && known
}

/// `[seq, seq]`: 0 on and below the diagonal, −∞ above (a token sees only earlier ones).
fn causal_mask(seq: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> =
        (0..seq).flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(values, (seq, seq), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;

    fn config(layers: usize) -> ClipTextConfig {
        ClipTextConfig {
            vocab_size: 10,
            hidden_size: 8,
            intermediate_size: 16,
            num_hidden_layers: layers,
            num_attention_heads: 2,
            max_position_embeddings: 6,
            activation: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            eos_token_id: 9,
            projection_dim: 8,
        }
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// `model-runtime/parity/text.py`: transformers' tiny `CLIPTextModel` and
    /// `CLIPTextModelWithProjection`, saved with and without the `text_model.` prefix, give
    /// transformers' last and penultimate hidden states; the projection of the pooled output
    /// (first end token) through the file's `text_projection.weight`
    /// ([`ClipOutput::PenultimateAndPooled`]) gives its `text_embeds`.
    #[test]
    fn embeddings_match_transformers_in_both_weight_namings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text");
        let expected =
            candle_core::safetensors::load(dir.join("embeddings.safetensors"), &Device::Cpu).unwrap();
        let ids = expected["ids"].to_dtype(DType::U32).unwrap();
        for (model, projection) in [("text", false), ("text-projection", true)] {
            for (naming, prefixed) in [("bare", false), ("prefixed", true)] {
                let folder = dir.join(format!("clip-{model}-{naming}"));
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
                let config = crate::configs::clip_text_config(&json).unwrap();
                let tensors =
                    candle_core::safetensors::load(folder.join("model.safetensors"), &Device::Cpu).unwrap();
                let names = ClipWeightNames::detect(tensors.keys().map(String::as_str), &config).unwrap();
                assert_eq!(names, ClipWeightNames { prefixed, projection });
                let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
                let mut worst = 0f32;
                for (output, key) in [
                    (ClipOutput::LastHiddenState, "last_hidden_state"),
                    (ClipOutput::Penultimate, "penultimate"),
                ] {
                    let encoder =
                        ClipTextModel::new(names.root(vb.clone()), vb.clone(), &config, output).unwrap();
                    let actual = encoder.forward(&ids).unwrap();
                    worst = worst.max(largest_difference(&actual, &expected[&format!("{model}.{key}")]));
                }
                if projection {
                    let encoder = ClipTextModel::new(
                        names.root(vb.clone()),
                        vb.clone(),
                        &config,
                        ClipOutput::PenultimateAndPooled,
                    )
                    .unwrap();
                    let embedded = encoder.embed(&ids).unwrap();
                    worst = worst.max(largest_difference(
                        &embedded.hidden,
                        &expected[&format!("{model}.penultimate")],
                    ));
                    let pooled = embedded.pooled.unwrap();
                    worst =
                        worst.max(largest_difference(&pooled, &expected[&format!("{model}.text_embeds")]));
                }
                eprintln!("clip-{model}-{naming}: largest difference from transformers {worst:e}");
                assert!(worst < 1e-5, "clip-{model}-{naming}: largest difference {worst}");
            }
        }
    }

    #[test]
    fn weights_of_anything_else_are_refused_by_name() {
        let c = config(2);
        let base = [
            "embeddings.token_embedding.weight",
            "embeddings.position_embedding.weight",
            "encoder.layers.1.mlp.fc2.bias",
            "final_layer_norm.weight",
        ];
        let prefixed: Vec<String> = base.iter().map(|n| format!("text_model.{n}")).collect();
        let detect = |names: &[&str]| ClipWeightNames::detect(names.iter().copied(), &c);
        assert_eq!(detect(&base).unwrap(), ClipWeightNames { prefixed: false, projection: false });
        let mut with_projection: Vec<&str> = prefixed.iter().map(String::as_str).collect();
        with_projection.push("text_projection.weight");
        assert_eq!(detect(&with_projection).unwrap(), ClipWeightNames { prefixed: true, projection: true });
        for (extra, needle) in [
            ("vision_model.embeddings.patch_embedding.weight", "vision_model"),
            ("text_model.embeddings.token_embedding.weight", "has both"),
            ("encoder.layers.2.mlp.fc1.weight", "layers.2"),
            ("encoder.layers.01.mlp.fc1.weight", "layers.01"),
            ("encoder.layers.0.mlp.fc3.weight", "fc3"),
            ("logit_scale", "logit_scale"),
        ] {
            let mut names = base.to_vec();
            names.push(extra);
            let error = detect(&names).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
        assert!(detect(&["unet.conv_in.weight"]).unwrap_err().contains("has neither"));
    }

    #[test]
    fn tokens_only_see_earlier_tokens() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let model = ClipTextModel::new(vb.clone(), vb, &config(2), ClipOutput::LastHiddenState).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4, 5, 6]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9, 9, 9]], &Device::Cpu).unwrap();
        let (ya, yb) = (model.forward(&a).unwrap(), model.forward(&b).unwrap());
        assert_eq!(ya.dims(), &[1, 6, 8]);
        let prefix = |t: &Tensor| t.narrow(1, 0, 3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let suffix = |t: &Tensor| t.narrow(1, 3, 3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(prefix(&ya), prefix(&yb));
        assert_ne!(suffix(&ya), suffix(&yb));
    }

    #[test]
    fn penultimate_output_skips_the_last_layer_and_norm() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let full = ClipTextModel::new(vb.clone(), vb.clone(), &config(3), ClipOutput::Penultimate).unwrap();
        assert_eq!(full.layers.len(), 2);
        assert!(full.final_layer_norm.is_none());
        // Same weights through a 2-layer model without the final norm give the same output.
        let mut two = ClipTextModel::new(vb.clone(), vb, &config(2), ClipOutput::LastHiddenState).unwrap();
        two.final_layer_norm = None;
        let ids = Tensor::new(&[[0u32, 3, 1, 1, 1, 1]], &Device::Cpu).unwrap();
        let a = full.forward(&ids).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = two.forward(&ids).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        assert!(ClipTextModel::new(vb.clone(), vb, &config(1), ClipOutput::Penultimate).is_err());
    }
}
