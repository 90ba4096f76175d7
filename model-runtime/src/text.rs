//! From prompt text to what the UNet attends to. Each text encoder's tokenizer truncates or pads
//! the prompt to the encoder's fixed length (with the `pad_token` of `tokenizer_config.json`, as
//! diffusers does), the CLIP encoder embeds the ids, and with two encoders (SDXL) their outputs
//! are concatenated along the feature axis.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::RuntimeError;
use crate::clip::ClipTextModel;

/// A tokenizer that always yields exactly `length` ids.
pub(crate) struct PromptTokenizer {
    tokenizer: Tokenizer,
    length: usize,
}

impl PromptTokenizer {
    /// `tokenizer_json` is a `tokenizers` file; `config` is `tokenizer_config.json`, whose
    /// `pad_token` must be in the vocabulary. Every id must fit `vocab_size`.
    pub fn new(
        tokenizer_path: &Path,
        tokenizer_json: &[u8],
        config_path: &Path,
        config: &Value,
        length: usize,
        vocab_size: usize,
    ) -> Result<Self, RuntimeError> {
        let invalid =
            |path: &Path, reason: String| RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason };
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| invalid(tokenizer_path, format!("not a tokenizers file: {e}")))?;
        let pad_token = match config.get("pad_token") {
            Some(Value::String(token)) => token.clone(),
            Some(Value::Object(token)) => match token.get("content") {
                Some(Value::String(content)) => content.clone(),
                _ => return Err(invalid(config_path, "pad_token has no content".to_string())),
            },
            _ => return Err(invalid(config_path, "pad_token is missing".to_string())),
        };
        let pad_id = tokenizer.token_to_id(&pad_token).ok_or_else(|| {
            invalid(tokenizer_path, format!("pad token {pad_token:?} is not in the vocabulary"))
        })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > vocab_size {
            return Err(invalid(
                tokenizer_path,
                format!("{tokenizer_vocab} tokens, but the text encoder embeds only {vocab_size}"),
            ));
        }
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: length, ..Default::default() }))
            .map_err(|e| invalid(tokenizer_path, format!("cannot truncate to {length}: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(length),
            pad_id,
            pad_token,
            ..Default::default()
        }));
        Ok(Self { tokenizer, length })
    }

    /// The ids for `text` (special tokens added, truncated, padded). `field` names the text in
    /// errors.
    pub fn ids(&self, text: &str, field: &'static str) -> Result<Vec<u32>, RuntimeError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| RuntimeError::Tokenize { field, reason: e.to_string() })?;
        let ids = encoding.get_ids();
        if ids.len() != self.length {
            return Err(RuntimeError::Tokenize {
                field,
                reason: format!("{} ids instead of {}", ids.len(), self.length),
            });
        }
        Ok(ids.to_vec())
    }
}

/// One tokenizer and the encoder it feeds.
pub(crate) struct TextEncoder {
    pub tokenizer: PromptTokenizer,
    pub model: ClipTextModel,
}

/// All text encoders of a model.
pub(crate) struct TextConditioner {
    encoders: Vec<TextEncoder>,
    device: Device,
}

impl TextConditioner {
    pub fn new(encoders: Vec<TextEncoder>, device: Device) -> Self {
        Self { encoders, device }
    }

    /// Width of the conditioning: the sum of the encoders' hidden sizes.
    pub fn context_dim(&self) -> usize {
        self.encoders.iter().map(|e| e.model.hidden_size()).sum()
    }

    /// Embeds `texts` (each `(field name, text)`) as one batch: `[texts.len(), length, context_dim]`.
    pub fn embed(&self, texts: &[(&'static str, &str)]) -> Result<Tensor, RuntimeError> {
        let mut outputs = Vec::with_capacity(self.encoders.len());
        for encoder in &self.encoders {
            let mut ids = Vec::new();
            for (field, text) in texts {
                ids.extend(encoder.tokenizer.ids(text, field)?);
            }
            let ids = Tensor::from_vec(ids, (texts.len(), encoder.tokenizer.length), &self.device)?;
            outputs.push(encoder.model.forward(&ids)?);
        }
        Ok(Tensor::cat(&outputs, 2)?)
    }

    /// Each encoder's ids for `text`, as [`Self::embed`] feeds them (the parity tests compare
    /// them with diffusers').
    pub fn token_ids(&self, text: &str) -> Result<Vec<Vec<u32>>, RuntimeError> {
        self.encoders.iter().map(|encoder| encoder.tokenizer.ids(text, "prompt")).collect()
    }
}
