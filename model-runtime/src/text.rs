//! From prompt text to what the UNet attends to. Each text encoder's tokenizer truncates or pads
//! the prompt to the encoder's fixed length (with the `pad_token` of `tokenizer_config.json`, as
//! diffusers does), the CLIP encoder embeds the ids, and with two encoders (SDXL) their outputs
//! are concatenated along the feature axis. The encoder that has a projection (SDXL's second)
//! also gives its pooled embedding, the UNet's added conditioning.
//!
//! Truncation is transformers' `truncation=True, max_length=77` (what diffusers' pipelines ask
//! for): the text's own tokens are cut to leave room for the start and end tokens, which are
//! always there. How many tokens were cut is counted ([`TextFit`]), so a caller can say so.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationDirection};

use crate::clip::ClipTextModel;
use crate::clip_tokenizer::{SpecialTokens, TokenizerFile, clip_bpe_tokenizer};
use crate::{GenerationParams, RuntimeError};

/// What fitting a request's texts to the model's fixed token length cut off: the number of
/// tokens of each text that the text encoders do not see (0 when the whole text fits). With two
/// encoders (SDXL) it is the larger count of the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFit {
    pub prompt_tokens_dropped: usize,
    pub negative_prompt_tokens_dropped: usize,
    /// The text encoders' fixed length in tokens, start and end tokens included (77 for CLIP), so
    /// a message can say what the texts were cut to; 0 when the generator does not say.
    pub token_length: usize,
}

impl TextFit {
    /// Whether any text was cut.
    pub fn truncated(&self) -> bool {
        self.prompt_tokens_dropped > 0 || self.negative_prompt_tokens_dropped > 0
    }
}

/// The bytes a CLIP tokenizer is built from, with their paths (used in errors).
pub(crate) enum TokenizerSource<'a> {
    /// A `tokenizers` file (`tokenizer.json`), used as it is.
    Json { path: &'a Path, bytes: &'a [u8] },
    /// CLIP's `vocab.json` and `merges.txt` (see [`crate::clip_tokenizer`]).
    VocabMerges { vocab_path: &'a Path, vocab: &'a [u8], merges_path: &'a Path, merges: &'a [u8] },
}

/// A tokenizer's ids for one text, fitted to the fixed length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FittedIds {
    pub ids: Vec<u32>,
    /// Tokens of the text cut off to fit.
    pub dropped: usize,
}

/// A tokenizer that always yields exactly `length` ids.
pub(crate) struct PromptTokenizer {
    tokenizer: Tokenizer,
    length: usize,
    pad_id: u32,
    /// Tokens the post-processor adds around the text (start and end).
    added: usize,
}

impl PromptTokenizer {
    /// `config` is `tokenizer_config.json`: its `pad_token` must be in the vocabulary, and its
    /// `model_max_length`, when given, must be `length`. Every id must fit `vocab_size`.
    pub fn new(
        source: TokenizerSource<'_>,
        config_path: &Path,
        config: &Value,
        length: usize,
        vocab_size: usize,
    ) -> Result<Self, RuntimeError> {
        let invalid =
            |path: &Path, reason: String| RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason };
        let special = SpecialTokens::from_config(config).map_err(|e| invalid(config_path, e))?;
        if let Some(max) = config.get("model_max_length").and_then(Value::as_f64)
            && max != length as f64
        {
            return Err(invalid(
                config_path,
                format!("model_max_length {max} is not the text encoder's {length} positions"),
            ));
        }
        let (mut tokenizer, tokenizer_path) = match source {
            TokenizerSource::Json { path, bytes } => {
                let tokenizer = Tokenizer::from_bytes(bytes)
                    .map_err(|e| invalid(path, format!("not a tokenizers file: {e}")))?;
                (tokenizer, path)
            }
            TokenizerSource::VocabMerges { vocab_path, vocab, merges_path, merges } => {
                let tokenizer =
                    clip_bpe_tokenizer(vocab, merges, &special).map_err(|(file, reason)| match file {
                        TokenizerFile::Vocab => invalid(vocab_path, reason),
                        TokenizerFile::Merges => invalid(merges_path, reason),
                    })?;
                (tokenizer, vocab_path)
            }
        };
        let pad_id = tokenizer.token_to_id(&special.pad.content).ok_or_else(|| {
            invalid(tokenizer_path, format!("pad token {:?} is not in the vocabulary", special.pad.content))
        })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > vocab_size {
            return Err(invalid(
                tokenizer_path,
                format!("{tokenizer_vocab} tokens, but the text encoder embeds only {vocab_size}"),
            ));
        }
        // Truncation and padding are done in `ids`, where the cut can be counted; settings a
        // tokenizer.json carries would do them differently.
        tokenizer
            .with_truncation(None)
            .map_err(|e| invalid(tokenizer_path, format!("cannot turn truncation off: {e}")))?;
        tokenizer.with_padding(None);
        let added =
            tokenizer.get_post_processor().map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if added >= length {
            return Err(invalid(tokenizer_path, format!("{added} special tokens leave no room in {length}")));
        }
        Ok(Self { tokenizer, length, pad_id, added })
    }

    /// The ids for `text`: its tokens cut to `length` minus the special tokens, the special
    /// tokens added, then padded to `length`. `field` names the text in errors.
    pub fn ids(&self, text: &str, field: &'static str) -> Result<FittedIds, RuntimeError> {
        let tokenize = |e: tokenizers::Error| RuntimeError::Tokenize { field, reason: e.to_string() };
        let mut encoding = self.tokenizer.encode(text, false).map_err(tokenize)?;
        let room = self.length - self.added;
        let dropped = encoding.len().saturating_sub(room);
        if dropped > 0 {
            encoding.truncate(room, 0, TruncationDirection::Right);
        }
        let encoding = self.tokenizer.post_process(encoding, None, true).map_err(tokenize)?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.length {
            return Err(RuntimeError::Tokenize {
                field,
                reason: format!("{} ids instead of {}", ids.len(), self.length),
            });
        }
        ids.resize(self.length, self.pad_id);
        Ok(FittedIds { ids, dropped })
    }

    pub fn length(&self) -> usize {
        self.length
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

    /// How many tokens of the prompt and the negative prompt the encoders cannot see.
    pub fn fit(&self, params: &GenerationParams) -> Result<TextFit, RuntimeError> {
        let mut fit = TextFit::default();
        for encoder in &self.encoders {
            let prompt = encoder.tokenizer.ids(&params.prompt, "prompt")?.dropped;
            let negative = encoder.tokenizer.ids(&params.negative_prompt, "negative_prompt")?.dropped;
            fit.prompt_tokens_dropped = fit.prompt_tokens_dropped.max(prompt);
            fit.negative_prompt_tokens_dropped = fit.negative_prompt_tokens_dropped.max(negative);
            fit.token_length = fit.token_length.max(encoder.tokenizer.length());
        }
        Ok(fit)
    }

    /// Width of the pooled embedding: the first encoder's that gives one (as diffusers' SDXL
    /// pipeline takes it).
    pub fn pooled_dim(&self) -> Option<usize> {
        self.encoders.iter().find_map(|e| e.model.pooled_dim())
    }

    /// Embeds `texts` (each `(field name, text)`) as one batch: `[texts.len(), length,
    /// context_dim]`, and `[texts.len(), pooled_dim]` where an encoder pools.
    pub fn embed(&self, texts: &[(&'static str, &str)]) -> Result<(Tensor, Option<Tensor>), RuntimeError> {
        let mut outputs = Vec::with_capacity(self.encoders.len());
        let mut pooled = None;
        for encoder in &self.encoders {
            let mut ids = Vec::new();
            for (field, text) in texts {
                ids.extend(encoder.tokenizer.ids(text, field)?.ids);
            }
            let ids = Tensor::from_vec(ids, (texts.len(), encoder.tokenizer.length()), &self.device)?;
            let embedded = encoder.model.embed(&ids)?;
            outputs.push(embedded.hidden);
            if pooled.is_none() {
                pooled = embedded.pooled;
            }
        }
        Ok((Tensor::cat(&outputs, 2)?, pooled))
    }

    /// Each encoder's ids for `text`, as [`Self::embed`] feeds them (the parity tests compare
    /// them with diffusers').
    pub fn token_ids(&self, text: &str) -> Result<Vec<Vec<u32>>, RuntimeError> {
        self.encoders.iter().map(|encoder| Ok(encoder.tokenizer.ids(text, "prompt")?.ids)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text")
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The fixture folder `name` as a tokenizer: from tokenizer.json when it has one, else from
    /// vocab.json and merges.txt (as the loader decides).
    fn tokenizer(name: &str) -> PromptTokenizer {
        let dir = fixtures().join(name);
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = serde_json::from_slice(&read(&config_path)).unwrap();
        let json_path = dir.join("tokenizer.json");
        let (vocab_path, merges_path) = (dir.join("vocab.json"), dir.join("merges.txt"));
        let (json, vocab, merges) = if json_path.is_file() {
            (Some(read(&json_path)), Vec::new(), Vec::new())
        } else {
            (None, read(&vocab_path), read(&merges_path))
        };
        let source = match &json {
            Some(bytes) => TokenizerSource::Json { path: &json_path, bytes },
            None => TokenizerSource::VocabMerges {
                vocab_path: &vocab_path,
                vocab: &vocab,
                merges_path: &merges_path,
                merges: &merges,
            },
        };
        PromptTokenizer::new(source, &config_path, &config, 77, 770).unwrap()
    }

    fn ids(value: &Value) -> Vec<u32> {
        value.as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect()
    }

    /// `model-runtime/parity/text.py`: every prompt gives transformers' ids, from both folder
    /// styles, for both padding tokens; the cut is what transformers cuts, and is counted.
    #[test]
    fn ids_match_transformers_clip_tokenizer() {
        let record: Value = serde_json::from_slice(&read(&fixtures().join("tokens.json"))).unwrap();
        let prompts: Vec<&str> =
            record["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(prompts.len() >= 30);
        let mut compared = 0;
        for style in ["sd15", "sd2"] {
            let entry = &record["folders"][style];
            let references = ["slow", "fast", "fast_from_json"];
            for folder in [format!("tokenizer-{style}"), format!("tokenizer-{style}-json")] {
                let tokenizer = tokenizer(&folder);
                assert_eq!(tokenizer.pad_id as u64, entry["pad_id"].as_u64().unwrap());
                for (index, prompt) in prompts.iter().enumerate() {
                    let fitted = tokenizer.ids(prompt, "prompt").unwrap();
                    for reference in references {
                        assert_eq!(
                            fitted.ids,
                            ids(&entry[reference][index]),
                            "{folder} {reference} {prompt:?}"
                        );
                    }
                    let untruncated = entry["untruncated_lengths"][index].as_u64().unwrap() as usize;
                    assert_eq!(fitted.dropped, untruncated.saturating_sub(77), "{folder} {prompt:?}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 4 * prompts.len());
        // The cut keeps the end token, as `truncation=True` does.
        let long = tokenizer("tokenizer-sd15").ids(prompts.last().unwrap(), "prompt").unwrap();
        assert!(long.dropped > 0);
        assert_eq!((long.ids[0], long.ids[76]), (768, 769));
    }

    /// Where transformers 4's pure-Python CLIPTokenizer (no ftfy) and its tokenizers-backed one
    /// disagree, this tokenizer follows the latter (module doc of `clip_tokenizer`); the
    /// fixture pins exactly which prompts those are.
    #[test]
    fn transformers_4_differs_only_where_documented() {
        let record: Value = serde_json::from_slice(&read(&fixtures().join("tokens.json"))).unwrap();
        let prompts = record["prompts"].as_array().unwrap();
        let entry = &record["folders"]["sd15"];
        let Some(v4) = entry.get("transformers4") else { return };
        let differing = |name: &str| -> Vec<&str> {
            (0..prompts.len())
                .filter(|&i| entry["slow"][i] != v4[name][i])
                .map(|i| prompts[i].as_str().unwrap())
                .collect()
        };
        assert_eq!(
            differing("slow"),
            [
                "tabs\t\tand\r\nnewlines\u{b}vertical",
                "東京タワー 夜景",
                "\u{a0}non-breaking\u{a0}space and zero\u{200b}width",
                "bell\u{7}char",
                "<|ENDOFTEXT|> shouting"
            ]
        );
        assert_eq!(differing("fast"), ["<|ENDOFTEXT|> shouting"]);
    }

    #[test]
    fn a_model_max_length_other_than_the_encoders_is_refused() {
        let dir = fixtures().join("tokenizer-sd15");
        let (vocab, merges) = (read(&dir.join("vocab.json")), read(&dir.join("merges.txt")));
        let source = TokenizerSource::VocabMerges {
            vocab_path: &dir.join("vocab.json"),
            vocab: &vocab,
            merges_path: &dir.join("merges.txt"),
            merges: &merges,
        };
        let config = serde_json::json!({"pad_token": "<|endoftext|>", "model_max_length": 100});
        let error = PromptTokenizer::new(source, Path::new("c.json"), &config, 77, 770).err().unwrap();
        assert!(error.to_string().contains("model_max_length 100"), "{error}");
    }
}
