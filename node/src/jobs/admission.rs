//! Admission: everything checked before a request is stored, each failure with its own code and a
//! message that tells the creator what to change.

use alloy::primitives::{B256, U256};
use alloy::sol_types::Eip712Domain;
use genmint_model_runtime::{GenerationParams, ModelDescriptor, RuntimeError, SchedulerKind};

use crate::provenance::eip712::{GenerationRequest, SignedRequest, recover_request_signer, request_digest};

/// Requests whose deadline is closer than this are refused: there would be no time left to mint.
pub const MIN_DEADLINE_MARGIN_SECS: u64 = 30;

/// Why a request was refused; `code` is stable for clients, the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection { code, message: message.into() }
}

/// What admission needs to know about this node.
pub struct AdmissionContext<'a> {
    pub domain: &'a Eip712Domain,
    pub model: &'a ModelDescriptor,
    pub max_prompt_bytes: usize,
    /// The smallest signed fee this node runs a job for.
    pub min_fee: U256,
    pub now_unix: u64,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The EIP-712 digest: job id and token id.
    pub digest: B256,
    pub params: GenerationParams,
}

/// Checks a signed request against the node's model, price, limits and clock: may it run here?
pub fn admit(signed: &SignedRequest, ctx: &AdmissionContext<'_>) -> Result<Admitted, Rejection> {
    let request = &signed.request;
    check_text(request, ctx.max_prompt_bytes)?;
    if request.modelHash.0 != ctx.model.hash.0 {
        return Err(reject(
            "unknown_model",
            format!(
                "this node serves model {} ({}), not {}; GET /v1/models lists what it serves",
                ctx.model.hash, ctx.model.name, request.modelHash
            ),
        ));
    }
    if request.fee < ctx.min_fee {
        return Err(reject(
            "fee_too_low",
            format!("the signed fee is {} wei; this node asks at least {} wei", request.fee, ctx.min_fee),
        ));
    }
    let params = generation_params(request, ctx.model)?;
    let digest = check_signed(signed, ctx.domain, ctx.now_unix)?;
    Ok(Admitted { digest, params })
}

/// The checks that do not depend on the model: prompt text, deadline and the creator's signature.
/// A request that passes may be forwarded to a peer, which admits it fully. Returns the digest.
pub fn admit_for_forwarding(
    signed: &SignedRequest,
    domain: &Eip712Domain,
    max_prompt_bytes: usize,
    now_unix: u64,
) -> Result<B256, Rejection> {
    check_text(&signed.request, max_prompt_bytes)?;
    check_signed(signed, domain, now_unix)
}

fn check_signed(signed: &SignedRequest, domain: &Eip712Domain, now_unix: u64) -> Result<B256, Rejection> {
    let request = &signed.request;
    if request.deadline < now_unix + MIN_DEADLINE_MARGIN_SECS {
        return Err(reject(
            "expired",
            format!(
                "deadline {} is past or less than {MIN_DEADLINE_MARGIN_SECS} s away (now {now_unix}); sign a request with a later deadline",
                request.deadline
            ),
        ));
    }
    let digest = request_digest(request, domain);
    let signer = recover_request_signer(request, &signed.signature, domain)
        .map_err(|e| reject("bad_signature", format!("the signature cannot be read: {e}")))?;
    if signer != request.creator {
        return Err(reject(
            "bad_signature",
            format!(
                "the signature is by {signer}, not by the creator {}; sign the EIP-712 request from GET /v1/eip712 with the creator's key",
                request.creator
            ),
        ));
    }
    Ok(digest)
}

fn check_text(request: &GenerationRequest, max: usize) -> Result<(), Rejection> {
    if request.prompt.trim().is_empty() {
        return Err(reject("invalid_prompt", "the prompt is empty"));
    }
    for (field, text) in [("prompt", &request.prompt), ("negativePrompt", &request.negativePrompt)] {
        if text.len() > max {
            return Err(reject(
                "prompt_too_long",
                format!("{field} is {} bytes; this node accepts at most {max}", text.len()),
            ));
        }
    }
    Ok(())
}

/// The generation parameters a request asks for, checked against the model's limits.
pub fn generation_params(
    request: &GenerationRequest,
    model: &ModelDescriptor,
) -> Result<GenerationParams, Rejection> {
    let scheduler: SchedulerKind = request.scheduler.parse().map_err(|_| {
        reject("out_of_range", format!("scheduler {:?} is not supported; use \"ddim\"", request.scheduler))
    })?;
    let params = GenerationParams {
        prompt: request.prompt.clone(),
        negative_prompt: request.negativePrompt.clone(),
        seed: request.seed,
        width: request.width,
        height: request.height,
        steps: request.steps,
        guidance: request.guidance as f32 / 100.0,
        scheduler,
    };
    model.limits.validate(&params).map_err(|e| match e {
        RuntimeError::InvalidParameter { field: "prompt" | "negative_prompt", .. } => {
            reject("prompt_too_long", e.to_string())
        }
        other => reject("out_of_range", other.to_string()),
    })?;
    Ok(params)
}
