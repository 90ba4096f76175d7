//! Sentence embeddings for the pixel-space models: a BERT encoder (candle-transformers' `bert`,
//! weights named as in transformers' `BertModel`) whose last hidden state is mean-pooled over the
//! prompt's real tokens and L2-normalized. With all-MiniLM-L6-v2's files this is exactly the
//! sentence-transformers embedding of that model (checked against PyTorch by a fixture test).
//!
//! ```text
//! prompt ─► WordPiece tokenizer: [CLS] … [SEP], truncated at 128 tokens, padded to 128
//!        ─► BERT (attention mask: padding is never attended to)
//!        ─► mean over the masked-in positions ─► x / max(‖x‖₂, 1e-12) ─► [batch, hidden]
//! ```
//!
//! Every prompt is padded to the same 128 tokens, so the tensor shapes (and with them the order
//! of every floating-point sum) depend on nothing but the model.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::Value;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::RuntimeError;

/// Prompts are cut to this many tokens, `[CLS]` and `[SEP]` included (the sentence-transformers
/// setting the default model was trained with).
pub(crate) const MAX_TOKENS: usize = 128;

/// The L2 norm is clamped below at this value, as `torch.nn.functional.normalize` does.
const NORM_EPSILON: f64 = 1e-12;

/// A BERT encoder with its tokenizer, producing one unit vector per text.
pub(crate) struct SentenceEncoder {
    tokenizer: Tokenizer,
    model: BertModel,
    hidden_size: usize,
    device: Device,
}

impl SentenceEncoder {
    /// `config` is the BERT `config.json`, `tokenizer_json` a `tokenizers` file of the same
    /// vocabulary, `weights` the encoder's tensors. Paths are only used in errors.
    pub fn new(
        config_path: &Path,
        config: &Value,
        tokenizer_path: &Path,
        tokenizer_json: &[u8],
        weights_path: &Path,
        weights: VarBuilder<'static>,
    ) -> Result<Self, RuntimeError> {
        let invalid =
            |path: &Path, reason: String| RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason };
        let config: Config = serde_json::from_value(config.clone())
            .map_err(|e| invalid(config_path, format!("not a BERT config: {e}")))?;
        if config.max_position_embeddings < MAX_TOKENS {
            return Err(invalid(
                config_path,
                format!("max_position_embeddings {} is below {MAX_TOKENS}", config.max_position_embeddings),
            ));
        }
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| invalid(tokenizer_path, format!("not a tokenizers file: {e}")))?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > config.vocab_size {
            return Err(invalid(
                tokenizer_path,
                format!("{tokenizer_vocab} tokens, but the text encoder embeds only {}", config.vocab_size),
            ));
        }
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|_| invalid(config_path, "pad_token_id is out of range".to_string()))?;
        let pad_token = tokenizer.id_to_token(pad_id).ok_or_else(|| {
            invalid(tokenizer_path, format!("pad_token_id {pad_id} is not in the vocabulary"))
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| invalid(tokenizer_path, format!("cannot truncate to {MAX_TOKENS}: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(MAX_TOKENS),
            pad_id,
            pad_token,
            ..Default::default()
        }));
        let device = weights.device().clone();
        let model = BertModel::load(weights, &config).map_err(|e| invalid(weights_path, e.to_string()))?;
        Ok(Self { tokenizer, model, hidden_size: config.hidden_size, device })
    }

    /// Width of one embedding.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Embeds `texts` (each `(field name, text)`) as one batch: `[texts.len(), hidden_size]`, each
    /// row of unit length.
    pub fn embed(&self, texts: &[(&'static str, &str)]) -> Result<Tensor, RuntimeError> {
        let mut ids = Vec::with_capacity(texts.len() * MAX_TOKENS);
        let mut mask = Vec::with_capacity(texts.len() * MAX_TOKENS);
        for (field, text) in texts {
            let encoding = self
                .tokenizer
                .encode(*text, true)
                .map_err(|e| RuntimeError::Tokenize { field, reason: e.to_string() })?;
            if encoding.get_ids().len() != MAX_TOKENS {
                return Err(RuntimeError::Tokenize {
                    field,
                    reason: format!("{} ids instead of {MAX_TOKENS}", encoding.get_ids().len()),
                });
            }
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let shape = (texts.len(), MAX_TOKENS);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        // Every text has at least [CLS] and [SEP], so the count is never zero.
        let pooled = summed.broadcast_div(&weights.sum(1)?)?;
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(NORM_EPSILON, f64::MAX)?;
        Ok(pooled.broadcast_div(&norm)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The MiniLM files `scripts/setup.sh` installs (`$GENMINT_TOOLS`, else the checkout's `.tools`).
    fn minilm_dir() -> PathBuf {
        let tools = std::env::var_os("GENMINT_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
        let dir = crate::minilm_dir(&tools.join("python"));
        assert!(
            dir.join("model.safetensors").is_file(),
            "all-MiniLM-L6-v2 is not installed in {}: run scripts/setup.sh (or set GENMINT_TOOLS)",
            dir.display()
        );
        dir
    }

    fn encoder() -> SentenceEncoder {
        let dir = minilm_dir();
        let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let path = Path::new("minilm");
        SentenceEncoder::new(path, &config, path, &tokenizer, path, vb).unwrap()
    }

    /// `tests/fixtures/minilm-embeddings.json` holds PyTorch's embeddings of the same files
    /// (`training/make_fixtures.py`): an empty prompt, unicode, and one cut at 128 tokens.
    #[test]
    fn embeddings_match_pytorch() {
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/minilm-embeddings.json")).unwrap();
        let encoder = encoder();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.iter().any(|c| c["untruncated_tokens"].as_u64().unwrap() > MAX_TOKENS as u64));
        let texts: Vec<(&'static str, &str)> =
            cases.iter().map(|c| ("prompt", c["text"].as_str().unwrap())).collect();
        let batch = encoder.embed(&texts).unwrap().to_vec2::<f32>().unwrap();
        for (case, actual) in cases.iter().zip(&batch) {
            let expected: Vec<f64> =
                case["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(actual.len(), 384);
            let worst =
                actual.iter().zip(&expected).map(|(a, e)| (f64::from(*a) - e).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{:?}: largest difference {worst}", case["text"]);
            let norm = actual.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        // One at a time gives the same bits as in a batch: padding never leaks into a prompt.
        let single = encoder.embed(&texts[1..2]).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(single[0], batch[1]);
    }
}
