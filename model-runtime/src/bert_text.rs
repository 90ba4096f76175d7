//! Token embeddings for the pixel-space models: a BERT encoder (candle-transformers' `bert`,
//! weights named as in transformers' `BertModel`) whose last hidden state over the prompt's
//! tokens is the UNet's cross-attention context, as CLIP's is for Stable Diffusion. With
//! all-MiniLM-L6-v2's files this matches PyTorch (checked against a fixture).
//!
//! ```text
//! prompt ─► WordPiece tokenizer: [CLS] … [SEP], truncated at 128 tokens, not padded
//!        ─► BERT ─► last hidden state [1, tokens, hidden]
//! ```
//!
//! There is no padding, so no attention mask is needed anywhere (candle's UNet has none) and the
//! tensor shapes depend only on the prompt: the same prompt always runs the same sums.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationParams};

use crate::RuntimeError;

/// Prompts are cut to this many tokens, `[CLS]` and `[SEP]` included (the setting the default
/// model was trained with).
pub(crate) const MAX_TOKENS: usize = 128;

/// A BERT encoder with its tokenizer, producing one row per token of a text.
pub(crate) struct BertTextEncoder {
    tokenizer: Tokenizer,
    model: BertModel,
    hidden_size: usize,
    device: Device,
}

impl BertTextEncoder {
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
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| invalid(tokenizer_path, format!("cannot truncate to {MAX_TOKENS}: {e}")))?;
        tokenizer.with_padding(None);
        let device = weights.device().clone();
        let model = BertModel::load(weights, &config).map_err(|e| invalid(weights_path, e.to_string()))?;
        Ok(Self { tokenizer, model, hidden_size: config.hidden_size, device })
    }

    /// Width of one embedding.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// The last hidden state of `text`'s tokens: `[1, tokens, hidden_size]`. `field` names the
    /// request field in errors.
    pub fn embed(&self, field: &'static str, text: &str) -> Result<Tensor, RuntimeError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| RuntimeError::Tokenize { field, reason: e.to_string() })?;
        let ids = encoding.get_ids();
        let ids = Tensor::from_slice(ids, (1, ids.len()), &self.device)?;
        Ok(self.model.forward(&ids, &ids.zeros_like()?, None)?)
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

    fn encoder() -> BertTextEncoder {
        let dir = minilm_dir();
        let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(tensors, candle_core::DType::F32, &Device::Cpu);
        let path = Path::new("minilm");
        BertTextEncoder::new(path, &config, path, &tokenizer, path, vb).unwrap()
    }

    /// `tests/fixtures/minilm-tokens.json` holds PyTorch's last hidden state for the same files
    /// (`training/make_fixtures.py`): its first and last rows and the sum over all rows, for an
    /// empty prompt, unicode, and one cut at 128 tokens.
    #[test]
    fn token_embeddings_match_pytorch() {
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/minilm-tokens.json")).unwrap();
        let encoder = encoder();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.iter().any(|c| c["untruncated_tokens"].as_u64().unwrap() > MAX_TOKENS as u64));
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let hidden = encoder.embed("prompt", text).unwrap().squeeze(0).unwrap();
            let tokens = hidden.dim(0).unwrap();
            assert_eq!(tokens as u64, case["tokens"].as_u64().unwrap(), "{text:?}");
            let rows = [
                ("first", hidden.get(0).unwrap()),
                ("last", hidden.get(tokens - 1).unwrap()),
                ("sum", hidden.sum(0).unwrap()),
            ];
            for (name, actual) in rows {
                let actual = actual.to_vec1::<f32>().unwrap();
                let expected: Vec<f64> =
                    case[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                assert_eq!(actual.len(), 384);
                // Sums over up to 128 rows accumulate rounding; single rows match to ~1e-5.
                let tolerance = if name == "sum" { 1e-3 } else { 1e-4 };
                let worst =
                    actual.iter().zip(&expected).map(|(a, e)| (f64::from(*a) - e).abs()).fold(0.0, f64::max);
                assert!(worst < tolerance, "{text:?} {name}: largest difference {worst}");
            }
        }
    }
}
