//! The token's metadata JSON: OpenSea fields, ERC-7007 fields and genmint's provenance block.
//!
//! The metadata is pinned after the image and before the attestation, so it can name the image CID
//! and carry the creator's signed request, but not the node's attestation signature (which signs
//! the metadata CID): that signature lives on chain, in the proof of the mint's ERC-7007 `AigcData` event.
//!
//! The prompt is the creator's signed text and stays exact in `prompt` and in the provenance
//! block; where it reaches a field made for display (`description`), control characters and
//! bidirectional-text controls are escaped as `\u{…}`, so a marketplace never renders a prompt that
//! reorders or hides the text around it.

use genmint_model_runtime::trace::merkle::TraceRoot;
use serde::{Deserialize, Serialize};

/// Version of the `provenance` block; bump it with any incompatible change. Version 2 adds
/// `watermark`: the pinned pixels are the raw output with an invisible watermark, so they hash to
/// `watermark.markedPixelDigest` while `pixelDigest` stays the raw output's.
pub const PROVENANCE_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMetadata {
    pub name: String,
    pub description: String,
    /// `ipfs://<image CID>`
    pub image: String,
    pub attributes: Vec<Attribute>,
    /// OpenSea: the token's page on the node that minted it, which marketplaces link to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// ERC-7007: the prompt the creator signed.
    pub prompt: String,
    /// ERC-7007: kind of content.
    pub aigc_type: String,
    /// ERC-7007: where the content is.
    pub aigc_data: String,
    /// ERC-7007: how the output is proven (a registered node's EIP-712 attestation).
    pub proof_type: String,
    pub provenance: Provenance,
}

/// An OpenSea-style trait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub trait_type: String,
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_type: Option<String>,
}

/// Everything needed to re-check the token without the node that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub version: u32,
    pub chain_id: u64,
    pub contract: String,
    /// The creator's `GenerationRequest` in the API's JSON shape.
    pub request: serde_json::Value,
    pub creator_signature: String,
    /// The EIP-712 digest of the request, which is the token id.
    pub request_digest: String,
    pub model_hash: String,
    pub model_name: String,
    /// sha256(width u32 BE ‖ height u32 BE ‖ RGB8 pixels).
    pub pixel_digest: String,
    pub image_cid: String,
    pub width: u32,
    pub height: u32,
    /// The registered operator that generated the image and attests to it.
    pub node: String,
    pub envelope: Envelope,
    /// The invisible watermark in the pinned image; absent in version 1 metadata (unmarked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkRecord>,
    /// The latent trace the node committed to, for step checks; absent for tokens minted before
    /// traces and from generators that record none (an additive field: the version stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_trace: Option<LatentTraceRecord>,
}

/// Where the generation's latent trace is pinned and the Merkle root over its entries
/// (`genmint-latent-trace-v1`, see the README's "Step checks").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatentTraceRecord {
    /// `genmint-latent-trace-v1`.
    pub format: String,
    /// The trace file's CID.
    pub cid: String,
    /// The root over the trace's entries, which the file's header repeats.
    pub merkle_root: TraceRoot,
    /// Denoising steps: the file holds one more entry.
    pub steps: u32,
    /// The file's size.
    pub bytes: u64,
}

/// What the node marked into the pinned image's pixels, or why it marked nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatermarkRecord {
    /// The algorithm, `genmint-qim-dct-v1` (specified in the README).
    pub algorithm: String,
    pub embedded: bool,
    /// The 40-bit tag the mark carries, 10 hex digits, when embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The pixel digest of the pinned image: of the marked pixels, or the raw output's when
    /// nothing was embedded.
    pub marked_pixel_digest: String,
    /// Why no mark was embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The reproducibility envelope: same envelope, same pixel digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub engine: String,
    pub noise: String,
    pub scheduler: String,
    pub steps: u32,
    pub guidance: f32,
    pub dtype: String,
    pub device_class: String,
}

/// What the metadata is built from.
pub struct MetadataInput<'a> {
    pub prompt: &'a str,
    pub seed: u64,
    /// The token page (`<public URL>/tokens/<token id>`), when the node has a web page.
    pub external_url: Option<String>,
    pub provenance: Provenance,
}

impl TokenMetadata {
    pub fn new(input: MetadataInput<'_>) -> Self {
        let p = &input.provenance;
        let image = format!("ipfs://{}", p.image_cid);
        let short_id = p.request_digest.trim_start_matches("0x").chars().take(8).collect::<String>();
        let text = |trait_type: &str, value: serde_json::Value| Attribute {
            trait_type: trait_type.to_owned(),
            value,
            display_type: None,
        };
        let attributes = vec![
            text("model", p.model_name.clone().into()),
            text("model hash", p.model_hash.clone().into()),
            Attribute { trait_type: "seed".into(), value: input.seed.to_string().into(), display_type: None },
            text("size", format!("{}x{}", p.width, p.height).into()),
            Attribute {
                trait_type: "steps".into(),
                value: p.envelope.steps.into(),
                display_type: Some("number".into()),
            },
            Attribute {
                trait_type: "guidance".into(),
                value: serde_json::json!(p.envelope.guidance),
                display_type: Some("number".into()),
            },
            text("scheduler", p.envelope.scheduler.clone().into()),
        ];
        Self {
            name: format!("genmint {short_id}"),
            description: format!(
                "Generated by {} from the prompt \"{}\". Provenance: signed by the creator, attested by node {}, \
                 recorded on chain {}.",
                p.model_name,
                for_display(input.prompt),
                p.node,
                p.chain_id
            ),
            image: image.clone(),
            attributes,
            external_url: input.external_url,
            prompt: input.prompt.to_owned(),
            aigc_type: "image".into(),
            aigc_data: image,
            proof_type: "attestation".into(),
            provenance: input.provenance,
        }
    }

    /// The bytes that are pinned: pretty JSON with a fixed field order, so the CID is reproducible.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// `text` with every control character (C0, DEL, C1) and every bidirectional-text control
/// (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) written as `\u{hex}`; the rest as it is.
pub fn for_display(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    text.chars()
        .map(|c| if hidden(c) { format!("\\u{{{:x}}}", u32::from(c)) } else { c.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_fields_escape_control_and_bidi_characters_and_the_prompt_stays_exact() {
        let prompt = "evil\u{0}\u{202e}gnp.exe\u{7}\u{2066}x\u{85} caf\u{e9} \u{5e9}\u{5dc}\u{5d5}\u{5dd}";
        assert_eq!(
            for_display(prompt),
            "evil\\u{0}\\u{202e}gnp.exe\\u{7}\\u{2066}x\\u{85} caf\u{e9} \u{5e9}\u{5dc}\u{5d5}\u{5dd}"
        );
        let metadata = TokenMetadata::new(MetadataInput {
            prompt,
            seed: 1,
            external_url: None,
            provenance: Provenance {
                version: PROVENANCE_VERSION,
                chain_id: 1,
                contract: String::new(),
                request: serde_json::Value::Null,
                creator_signature: String::new(),
                request_digest: "0x1234567890".into(),
                model_hash: String::new(),
                model_name: "m".into(),
                pixel_digest: String::new(),
                image_cid: "bafy".into(),
                width: 8,
                height: 8,
                node: String::new(),
                envelope: Envelope {
                    engine: String::new(),
                    noise: String::new(),
                    scheduler: String::new(),
                    steps: 1,
                    guidance: 1.0,
                    dtype: String::new(),
                    device_class: String::new(),
                },
                watermark: None,
                latent_trace: None,
            },
        });
        for field in [&metadata.name, &metadata.description] {
            assert!(
                !field.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{field:?}"
            );
        }
        assert!(metadata.description.contains("evil\\u{0}\\u{202e}gnp.exe"), "{}", metadata.description);
        assert_eq!(metadata.prompt, prompt, "the signed prompt itself is kept exact");
    }
}
