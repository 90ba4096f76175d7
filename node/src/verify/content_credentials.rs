//! The `content_credentials` check: the image's C2PA manifest is valid, says the image was created
//! by genmint from trained algorithmic media, names this token (and, for a marked image, declares
//! its watermark as a soft binding), and is signed by a certificate the token's node bound to its
//! operator key.

use alloy::primitives::{Address, B256};

use super::ChainFacts;
use base64::Engine;

use crate::provenance::credentials::{
    self, TRAINED_ALGORITHMIC_MEDIA, WATERMARK_BINDING_ALG, binding_message,
};
use crate::provenance::watermark::WatermarkTag;

/// What the manifest must say, from the chain and the mint event.
pub(super) struct Expected {
    pub chain: ChainFacts,
    /// From the minted request; `None` when the metadata's request was unreadable.
    pub model_hash: Option<B256>,
    pub pixel_digest: B256,
    /// The marked pixels' digest the metadata records, when a watermark was embedded.
    pub marked_pixel_digest: Option<B256>,
    /// This token's watermark tag, when the metadata records a watermark: the manifest must
    /// declare it as a soft binding.
    pub watermark_tag: Option<WatermarkTag>,
    pub node: Address,
}

pub(super) fn check(image: &[u8], expected: &Expected) -> Result<String, String> {
    let read =
        credentials::read(image).map_err(|e| e.to_string())?.ok_or("the image carries no C2PA manifest")?;
    if !read.valid {
        return Err(format!("the C2PA manifest does not validate: {}", read.failures.join(", ")));
    }
    if read.created_source_type.as_deref() != Some(TRAINED_ALGORITHMIC_MEDIA)
        || read.created_by.as_deref() != Some("genmint")
    {
        return Err(format!(
            "the manifest's c2pa.created action is {} by {}, not trainedAlgorithmicMedia by genmint",
            read.created_source_type.as_deref().unwrap_or("missing"),
            read.created_by.as_deref().unwrap_or("nobody")
        ));
    }
    let token = read.token.ok_or("the manifest has no org.genmint.token assertion")?;
    let mut wrong = Vec::new();
    let mut expect = |field: &str, ok: bool, found: String| {
        if !ok {
            wrong.push(format!("{field} {found}"));
        }
    };
    expect("chainId", token.chain_id == expected.chain.chain_id, token.chain_id.to_string());
    expect("contract", token.contract == expected.chain.contract, token.contract.to_string());
    expect("tokenId", token.token_id == expected.chain.token_id, token.token_id.to_string());
    expect("modelHash", Some(token.model_hash) == expected.model_hash, token.model_hash.to_string());
    expect("pixelDigest", token.pixel_digest == expected.pixel_digest, token.pixel_digest.to_string());
    expect(
        "markedPixelDigest",
        token.marked_pixel_digest == expected.marked_pixel_digest,
        token.marked_pixel_digest.map_or("none".into(), |d| d.to_string()),
    );
    expect("operator", token.operator == expected.node, token.operator.to_string());
    if let Some(tag) = expected.watermark_tag {
        let value = base64::engine::general_purpose::STANDARD.encode(tag.0);
        let declared =
            read.soft_bindings.iter().any(|(alg, found)| alg == WATERMARK_BINDING_ALG && *found == value);
        expect("soft binding", declared, format!("{WATERMARK_BINDING_ALG} {value} is missing"));
    }
    if !wrong.is_empty() {
        return Err(format!(
            "the manifest's genmint assertion disagrees with the chain: {}",
            wrong.join(", ")
        ));
    }
    let fingerprint = read.certificate_sha256.ok_or("the manifest's signing certificate is unreadable")?;
    let signer = token
        .certificate_binding
        .recover_address_from_msg(binding_message(&fingerprint, token.operator))
        .map_err(|e| format!("the certificate binding is not a signature: {e}"))?;
    if signer != expected.node {
        return Err(format!(
            "the manifest is signed by certificate sha256 {fingerprint}, which node {} never bound (the binding recovers to {signer})",
            expected.node
        ));
    }
    Ok(format!(
        "C2PA manifest valid: trainedAlgorithmicMedia created by genmint, names this token; signed by certificate sha256 {fingerprint}, bound to node {}",
        expected.node
    ))
}
