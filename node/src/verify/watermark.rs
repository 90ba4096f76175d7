//! The `watermark` check: the pinned image carries the invisible watermark the metadata records,
//! and its tag is this token's (chain id, contract, token id); or the metadata says why the image
//! carries none. Also the pixel digest the pinned pixels must have: the marked one when a mark was
//! embedded, the attested raw output's otherwise.

use alloy::primitives::B256;
use genmint_model_runtime::Rgb8Image;

use super::ChainFacts;
use crate::provenance::metadata::WatermarkRecord;
use crate::provenance::watermark::{self, WatermarkTag};

/// The digest the pinned pixels must hash to, and what it is called in the report.
pub(super) fn expected_digest(
    record: Option<&WatermarkRecord>,
    attested: B256,
) -> Result<(B256, &'static str), String> {
    match record {
        Some(record) if record.embedded => record
            .marked_pixel_digest
            .parse()
            .map(|digest| (digest, "the marked pixels' digest the metadata records"))
            .map_err(|_| {
                format!("the metadata's markedPixelDigest {:?} is not a digest", record.marked_pixel_digest)
            }),
        _ => Ok((attested, "the raw output's digest the node attested")),
    }
}

pub(super) fn check(
    image: &Rgb8Image,
    record: Option<&WatermarkRecord>,
    facts: ChainFacts,
) -> Result<String, String> {
    let expected = WatermarkTag::for_token(facts.chain_id, facts.contract, facts.token_id);
    let Some(record) = record else {
        return Ok("the metadata (version 1) predates watermarks: the image carries none".into());
    };
    if !record.embedded {
        return Ok(format!(
            "no watermark was embedded: {}",
            record.reason.as_deref().unwrap_or("the metadata gives no reason")
        ));
    }
    if record.algorithm != watermark::ALGORITHM {
        return Err(format!(
            "the metadata names watermark algorithm {:?}, which this genmint does not know",
            record.algorithm
        ));
    }
    if record.tag.as_deref() != Some(expected.to_string().as_str()) {
        return Err(format!(
            "the metadata records tag {}, but this token's is {expected}",
            record.tag.as_deref().unwrap_or("none")
        ));
    }
    let found = watermark::detect(image).map_err(|e| e.to_string())?;
    match found.tag {
        Some(tag) if tag == expected => Ok(format!(
            "{} watermark found with tag {tag}, this token's (confidence {:.2})",
            record.algorithm, found.confidence
        )),
        Some(tag) => Err(format!("the image's watermark carries tag {tag}, not this token's {expected}")),
        None => Err(format!(
            "the metadata records a watermark, but none is found in the image (confidence {:.2})",
            found.confidence
        )),
    }
}
