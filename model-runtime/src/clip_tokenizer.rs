//! CLIP's byte-level BPE tokenizer, built from `vocab.json` and `merges.txt` (the files SD
//! downloads ship) the way transformers' `CLIPTokenizer` builds it, over the `tokenizers` crate's
//! BPE model, so the ids are the ones transformers produces:
//!
//! ```text
//! text ─► special tokens (bos, eos, unk, pad) split off as they are written
//!      ─► NFC, every run of whitespace to one space, lower case
//!      ─► pieces: <|startoftext|> | <|endoftext|> | 's 't 're 've 'm 'll 'd | letters+ | one digit
//!                 | a run of anything else but whitespace      (whitespace dropped)
//!      ─► UTF-8 bytes as byte symbols ─► BPE by merge rank, `</w>` on each piece's last symbol
//!      ─► <|startoftext|> ids <|endoftext|>
//! ```
//!
//! Where transformers 4's pure-Python `CLIPTokenizer` differs from its tokenizers-backed one
//! (and from transformers 5's only one), this follows the tokenizers-backed one: the Python one
//! (without `ftfy`) also drops control and format characters (e.g. U+0007, U+200B) and cuts CJK
//! text into one piece per character. Special tokens written in the prompt are matched as
//! transformers 5 matches them (see `SpecialTokens::added_tokens`); transformers 4 also
//! matches an upper-case `<|ENDOFTEXT|>` with SD 1.x's config. The fixture
//! `tests/fixtures/text/tokens.json` records both versions' ids.

use serde_json::Value;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{NFC, Replace, Sequence as NormalizerSequence, utils::Lowercase};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// The pieces BPE runs on (transformers' `CLIPTokenizer` pattern).
const PIECES: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// Marks the last symbol of a piece, so word ends merge differently from word middles.
const END_OF_WORD: &str = "</w>";

/// One special token as `tokenizer_config.json` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecialToken {
    pub content: String,
    /// Matched in the normalized (lower-cased) text rather than as written: an `AddedToken`
    /// object's `normalized`; a plain string is matched as written.
    pub normalized: bool,
}

impl SpecialToken {
    fn raw(content: &str) -> Self {
        Self { content: content.to_string(), normalized: false }
    }
}

/// The special tokens a CLIP tokenizer needs, from `tokenizer_config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecialTokens {
    pub bos: SpecialToken,
    pub eos: SpecialToken,
    pub unk: SpecialToken,
    pub pad: SpecialToken,
}

impl SpecialTokens {
    /// Reads `bos_token`, `eos_token`, `unk_token` (each a string or an `AddedToken` object) with
    /// `CLIPTokenizer`'s defaults, and `pad_token`, which must be given: SD 1.x pads with
    /// `<|endoftext|>`, SD 2.x with `!`, and guessing wrong changes every embedding.
    pub fn from_config(config: &Value) -> Result<Self, String> {
        let token = |key: &str, default: Option<&str>| -> Result<SpecialToken, String> {
            match config.get(key) {
                Some(Value::String(token)) => Ok(SpecialToken::raw(token)),
                Some(Value::Object(token)) => match token.get("content") {
                    Some(Value::String(content)) => Ok(SpecialToken {
                        content: content.clone(),
                        normalized: token.get("normalized").and_then(Value::as_bool).unwrap_or(false),
                    }),
                    _ => Err(format!("{key} has no content")),
                },
                None | Some(Value::Null) => {
                    default.map(SpecialToken::raw).ok_or_else(|| format!("{key} is missing"))
                }
                Some(other) => Err(format!("{key} is {other}, not a token")),
            }
        };
        Ok(Self {
            bos: token("bos_token", Some("<|startoftext|>"))?,
            eos: token("eos_token", Some("<|endoftext|>"))?,
            unk: token("unk_token", Some("<|endoftext|>"))?,
            pad: token("pad_token", None)?,
        })
    }

    /// The tokens cut out of the text before BPE. A token named twice (SD 1.x's
    /// `<|endoftext|>` is eos, unk and pad) takes its last definition in transformers' order
    /// (bos, eos, unk, pad), as transformers 5 does: so SD 1.x's plain-string `pad_token` makes
    /// `<|endoftext|>` match only as written.
    fn added_tokens(&self) -> Vec<AddedToken> {
        let mut tokens: Vec<&SpecialToken> = Vec::new();
        for token in [&self.bos, &self.eos, &self.unk, &self.pad] {
            tokens.retain(|t| t.content != token.content);
            tokens.push(token);
        }
        tokens
            .into_iter()
            .map(|t| AddedToken::from(t.content.clone(), true).normalized(t.normalized))
            .collect()
    }
}

/// Builds the tokenizer from the bytes of `vocab.json` and `merges.txt`. An error names the
/// file at fault and what is wrong with it.
pub(crate) fn clip_bpe_tokenizer(
    vocab_json: &[u8],
    merges_txt: &[u8],
    special: &SpecialTokens,
) -> Result<Tokenizer, (TokenizerFile, String)> {
    let vocab = parse_vocab(vocab_json).map_err(|e| (TokenizerFile::Vocab, e))?;
    let merges = parse_merges(merges_txt).map_err(|e| (TokenizerFile::Merges, e))?;
    if let Some((a, b)) = merges.iter().find(|(a, b)| !vocab.contains_key(a) || !vocab.contains_key(b)) {
        return Err((TokenizerFile::Merges, format!("merge {a:?} {b:?} uses a token not in vocab.json")));
    }
    let id = |token: &str| {
        vocab.get(token).copied().ok_or_else(|| {
            (TokenizerFile::Vocab, format!("special token {token:?} is not in the vocabulary"))
        })
    };
    let (bos_id, eos_id) = (id(&special.bos.content)?, id(&special.eos.content)?);
    id(&special.unk.content)?;
    id(&special.pad.content)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(special.unk.content.clone())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(END_OF_WORD.to_string())
        .fuse_unk(false)
        .build()
        .map_err(|e| (TokenizerFile::Merges, format!("not a BPE vocabulary: {e}")))?;
    let internal = |e: tokenizers::Error| (TokenizerFile::Vocab, e.to_string());
    let normalizer = NormalizerSequence::new(vec![
        NormalizerWrapper::NFC(NFC),
        NormalizerWrapper::Replace(
            Replace::new(ReplacePattern::Regex(r"\s+".into()), " ").map_err(internal)?,
        ),
        NormalizerWrapper::Lowercase(Lowercase),
    ]);
    let pre_tokenizer = PreTokenizerSequence::new(vec![
        PreTokenizerWrapper::Split(
            Split::new(SplitPattern::Regex(PIECES.into()), SplitDelimiterBehavior::Removed, true)
                .map_err(internal)?,
        ),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(normalizer)).map_err(internal)?;
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new((special.eos.content.clone(), eos_id), (special.bos.content.clone(), bos_id))
            .trim_offsets(false)
            .add_prefix_space(false),
    ));
    tokenizer.add_special_tokens(special.added_tokens()).map_err(internal)?;
    Ok(tokenizer)
}

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenizerFile {
    Vocab,
    Merges,
}

/// `vocab.json`: an object from token to id; ids must be distinct.
fn parse_vocab(bytes: &[u8]) -> Result<Vocab, String> {
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object of token ids: {e}"))?;
    let mut vocab = Vocab::default();
    let mut seen = std::collections::HashSet::new();
    for (token, id) in map {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format!("the id of {token:?} is {id}, not a token id"))?;
        if !seen.insert(id) {
            return Err(format!("id {id} is given to more than one token"));
        }
        vocab.insert(token, id);
    }
    Ok(vocab)
}

/// `merges.txt`: an optional `#version` line, then one merge per line, `left right`, highest
/// priority first (as the `tokenizers` crate reads it).
fn parse_merges(bytes: &[u8]) -> Result<Merges, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with("#version"))
        .map(|(index, line)| match line.split(' ').collect::<Vec<_>>().as_slice() {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(format!("line {} is {line:?}, not two tokens separated by a space", index + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn special_tokens_come_from_the_config_with_clip_defaults() {
        let config = json!({"pad_token": "!", "bos_token": {"content": "<s>", "normalized": true}});
        let special = SpecialTokens::from_config(&config).unwrap();
        assert_eq!(special.bos, SpecialToken { content: "<s>".into(), normalized: true });
        assert_eq!(special.eos, SpecialToken::raw("<|endoftext|>"));
        assert_eq!(special.unk, SpecialToken::raw("<|endoftext|>"));
        assert_eq!(special.pad, SpecialToken::raw("!"));
        let added = special.added_tokens();
        assert_eq!(
            added.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(),
            ["<s>", "<|endoftext|>", "!"]
        );
        assert!(SpecialTokens::from_config(&json!({})).unwrap_err().contains("pad_token"));
        assert!(SpecialTokens::from_config(&json!({"pad_token": {"x": 1}})).is_err());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let special = SpecialTokens::from_config(&json!({"pad_token": "<|endoftext|>"})).unwrap();
        let vocab = br#"{"a": 0, "b</w>": 1, "ab</w>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#;
        assert!(clip_bpe_tokenizer(vocab, b"#version: 0.2\na b</w>\n", &special).is_ok());
        let err = |vocab: &[u8], merges: &[u8]| clip_bpe_tokenizer(vocab, merges, &special).err().unwrap();
        assert_eq!(err(vocab, b"a b c\n").0, TokenizerFile::Merges);
        assert!(err(vocab, b"a x\n").1.contains("not in vocab.json"));
        assert_eq!(err(br#"{"a": -1}"#, b"").0, TokenizerFile::Vocab);
        assert!(err(br#"{"a": 0, "b": 0}"#, b"").1.contains("more than one"));
        assert!(err(br#"{"a": 0}"#, b"").1.contains("<|startoftext|>"));
    }
}
