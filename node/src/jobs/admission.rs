//! Admission: everything checked before a request is stored, each failure with its own code and a
//! message that tells the creator what to change.

use alloy::primitives::U256;
use alloy::sol_types::Eip712Domain;
use genmint_model_runtime::{GenerationParams, ModelDescriptor, RuntimeError, SchedulerKind};

use crate::provenance::eip712::{GenerationRequest, SignedRequest, recover_request_signer, request_digest};
use crate::provenance::ids::JobId;

/// Requests whose deadline is closer than this are refused: there would be no time left to mint.
pub const MIN_DEADLINE_MARGIN_SECS: u64 = 30;

/// Why a request was refused, as clients read it: a stable code per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    InvalidPrompt,
    PromptTooLong,
    NegativePromptUnsupported,
    UnknownModel,
    FeeTooLow,
    OutOfRange,
    Expired,
    BadSignature,
    InsufficientFunds,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 9] = [
        RefusalCode::InvalidPrompt,
        RefusalCode::PromptTooLong,
        RefusalCode::NegativePromptUnsupported,
        RefusalCode::UnknownModel,
        RefusalCode::FeeTooLow,
        RefusalCode::OutOfRange,
        RefusalCode::Expired,
        RefusalCode::BadSignature,
        RefusalCode::InsufficientFunds,
    ];

    /// The code on the wire and in the HTTP API's `{"error": {"code"}}`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::InvalidPrompt => "invalid_prompt",
            RefusalCode::PromptTooLong => "prompt_too_long",
            RefusalCode::NegativePromptUnsupported => "negative_prompt_unsupported",
            RefusalCode::UnknownModel => "unknown_model",
            RefusalCode::FeeTooLow => "fee_too_low",
            RefusalCode::OutOfRange => "out_of_range",
            RefusalCode::Expired => "expired",
            RefusalCode::BadSignature => "bad_signature",
            RefusalCode::InsufficientFunds => "insufficient_funds",
        }
    }

    /// Whether another node may still take the request: it names this node's model or price.
    pub fn is_local(self) -> bool {
        matches!(self, RefusalCode::UnknownModel | RefusalCode::FeeTooLow)
    }
}

/// Why a request was refused; the code is stable for clients, the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: RefusalCode,
    pub message: String,
}

pub(super) fn reject(code: RefusalCode, message: impl Into<String>) -> Rejection {
    Rejection { code, message: message.into() }
}

/// What admission needs to know about this node.
pub struct AdmissionContext<'a> {
    pub domain: &'a Eip712Domain,
    /// The models this node serves.
    pub models: Vec<&'a ModelDescriptor>,
    pub max_prompt_bytes: usize,
    /// The smallest signed fee this node runs a job for.
    pub min_fee: U256,
    pub now_unix: u64,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The EIP-712 digest: job id and token id.
    pub id: JobId,
    pub params: GenerationParams,
}

/// Checks a signed request against the node's model, price, limits and clock: may it run here?
pub fn admit(signed: &SignedRequest, ctx: &AdmissionContext<'_>) -> Result<Admitted, Rejection> {
    let request = &signed.request;
    check_text(request, ctx.max_prompt_bytes)?;
    let Some(model) = ctx.models.iter().find(|m| m.hash.0 == request.modelHash.0) else {
        let served: Vec<String> = ctx.models.iter().map(|m| format!("{} ({})", m.hash, m.name)).collect();
        let serves = if served.len() == 1 { "model" } else { "models" };
        return Err(reject(
            RefusalCode::UnknownModel,
            format!(
                "this node serves {serves} {}, not {}; GET /v1/models lists what it serves",
                served.join(", "),
                request.modelHash
            ),
        ));
    };
    if request.fee < ctx.min_fee {
        return Err(reject(
            RefusalCode::FeeTooLow,
            format!("the signed fee is {} wei; this node asks at least {} wei", request.fee, ctx.min_fee),
        ));
    }
    let params = generation_params(request, model)?;
    let digest = check_signed(signed, ctx.domain, ctx.now_unix)?;
    Ok(Admitted { id: digest, params })
}

/// The checks that do not depend on the model: prompt text, deadline and the creator's signature.
/// A request that passes may be forwarded to a peer, which admits it fully. Returns the digest.
pub fn admit_for_forwarding(
    signed: &SignedRequest,
    domain: &Eip712Domain,
    max_prompt_bytes: usize,
    now_unix: u64,
) -> Result<JobId, Rejection> {
    check_text(&signed.request, max_prompt_bytes)?;
    check_signed(signed, domain, now_unix)
}

fn check_signed(signed: &SignedRequest, domain: &Eip712Domain, now_unix: u64) -> Result<JobId, Rejection> {
    let request = &signed.request;
    if request.deadline < now_unix + MIN_DEADLINE_MARGIN_SECS {
        return Err(reject(
            RefusalCode::Expired,
            format!(
                "deadline {} is past or less than {MIN_DEADLINE_MARGIN_SECS} s away (now {now_unix}); sign a request with a later deadline",
                request.deadline
            ),
        ));
    }
    let digest = JobId(request_digest(request, domain));
    let signer = recover_request_signer(request, &signed.signature, domain)
        .map_err(|e| reject(RefusalCode::BadSignature, format!("the signature cannot be read: {e}")))?;
    if signer != request.creator {
        return Err(reject(
            RefusalCode::BadSignature,
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
        return Err(reject(RefusalCode::InvalidPrompt, "the prompt is empty"));
    }
    for (field, text) in [("prompt", &request.prompt), ("negativePrompt", &request.negativePrompt)] {
        if text.len() > max {
            return Err(reject(
                RefusalCode::PromptTooLong,
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
        reject(
            RefusalCode::OutOfRange,
            format!(
                "scheduler {:?} is not supported; use one of {}",
                request.scheduler,
                SchedulerKind::quoted(&model.limits.schedulers)
            ),
        )
    })?;
    if !model.limits.negative_prompt && !request.negativePrompt.is_empty() {
        return Err(reject(
            RefusalCode::NegativePromptUnsupported,
            format!(
                "model {} has no negative prompt; send an empty negativePrompt (it would be ignored, so it is refused)",
                model.name
            ),
        ));
    }
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
            reject(RefusalCode::PromptTooLong, e.to_string())
        }
        other => reject(RefusalCode::OutOfRange, other.to_string()),
    })?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::jobs::testing::{MODEL, descriptor};
    use crate::provenance::eip712::{domain, sign_request};

    const NOW: u64 = 1_800_000_000;

    fn signed(change: impl FnOnce(&mut GenerationRequest)) -> (SignedRequest, Eip712Domain) {
        let creator = PrivateKeySigner::random();
        let domain = domain(31337, Address::repeat_byte(0xc0));
        let mut request = GenerationRequest {
            creator: creator.address(),
            modelHash: B256::from(MODEL.0),
            prompt: "a red square".into(),
            negativePrompt: String::new(),
            seed: 1,
            width: 8,
            height: 8,
            steps: 2,
            guidance: 300,
            scheduler: "ddim".into(),
            fee: U256::from(10),
            nonce: U256::ZERO,
            deadline: NOW + 3600,
        };
        change(&mut request);
        let signature = sign_request(&creator, &request, &domain).unwrap();
        (SignedRequest { request, signature }, domain)
    }

    fn admit_with(signed: &SignedRequest, domain: &Eip712Domain) -> Result<Admitted, Rejection> {
        let model = descriptor();
        admit(
            signed,
            &AdmissionContext {
                domain,
                models: vec![&model],
                max_prompt_bytes: 50,
                min_fee: U256::from(5),
                now_unix: NOW,
            },
        )
    }

    fn refusal(change: impl FnOnce(&mut GenerationRequest)) -> Rejection {
        let (signed, domain) = signed(change);
        admit_with(&signed, &domain).unwrap_err()
    }

    #[test]
    fn a_good_request_is_admitted_under_its_digest() {
        let (signed, domain) = signed(|_| {});
        let admitted = admit_with(&signed, &domain).unwrap();
        assert_eq!(admitted.id, JobId(request_digest(&signed.request, &domain)));
        assert_eq!((admitted.params.width, admitted.params.guidance), (8, 3.0));
    }

    #[test]
    fn every_refusal_has_its_code_and_says_what_to_change() {
        let cases: [(RefusalCode, Rejection, &str); 9] = [
            (RefusalCode::InvalidPrompt, refusal(|r| r.prompt = "  ".into()), "empty"),
            (RefusalCode::PromptTooLong, refusal(|r| r.prompt = "x".repeat(51)), "at most 50"),
            (RefusalCode::PromptTooLong, refusal(|r| r.negativePrompt = "x".repeat(51)), "negativePrompt"),
            (RefusalCode::UnknownModel, refusal(|r| r.modelHash = B256::repeat_byte(9)), "GET /v1/models"),
            (RefusalCode::FeeTooLow, refusal(|r| r.fee = U256::from(4)), "at least 5 wei"),
            (RefusalCode::OutOfRange, refusal(|r| r.width = 64), "width 64"),
            (
                RefusalCode::OutOfRange,
                refusal(|r| r.scheduler = "plms".into()),
                "\"plms\" is not supported; use one of \"ddim\", \"euler\"",
            ),
            (RefusalCode::Expired, refusal(|r| r.deadline = NOW + 10), "later deadline"),
            (RefusalCode::OutOfRange, refusal(|r| r.steps = 11), "steps 11"),
        ];
        for (code, rejection, says) in cases {
            assert_eq!(rejection.code, code, "{rejection}");
            assert!(rejection.message.contains(says), "{code:?}: {rejection}");
        }
        let mut plain = descriptor();
        plain.limits.negative_prompt = false;
        let (with_negative, _) = signed(|r| r.negativePrompt = "blurry".into());
        let rejection = generation_params(&with_negative.request, &plain).unwrap_err();
        assert_eq!(rejection.code, RefusalCode::NegativePromptUnsupported, "{rejection}");
        assert!(rejection.message.contains("empty negativePrompt"), "{rejection}");
        let (mut forged, domain) = signed(|_| {});
        forged.request.seed = 2;
        let rejection = admit_with(&forged, &domain).unwrap_err();
        assert_eq!(rejection.code, RefusalCode::BadSignature);
        assert!(rejection.message.contains("not by the creator"), "{rejection}");
        forged.signature = vec![1, 2, 3].into();
        let rejection = admit_with(&forged, &domain).unwrap_err();
        assert_eq!(rejection.code, RefusalCode::BadSignature);
        assert!(rejection.message.contains("cannot be read"), "{rejection}");
    }

    #[test]
    fn forwarding_checks_only_what_does_not_depend_on_the_model() {
        let (signed, domain) = signed(|r| (r.modelHash, r.fee) = (B256::repeat_byte(9), U256::ZERO));
        let id = admit_for_forwarding(&signed, &domain, 50, NOW).unwrap();
        assert_eq!(id, JobId(request_digest(&signed.request, &domain)));
        let (late, domain) = signed_late();
        assert_eq!(admit_for_forwarding(&late, &domain, 50, NOW).unwrap_err().code, RefusalCode::Expired);
    }

    fn signed_late() -> (SignedRequest, Eip712Domain) {
        signed(|r| r.deadline = NOW)
    }

    #[test]
    fn codes_are_stable_text() {
        let texts: Vec<&str> = RefusalCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            texts,
            [
                "invalid_prompt",
                "prompt_too_long",
                "negative_prompt_unsupported",
                "unknown_model",
                "fee_too_low",
                "out_of_range",
                "expired",
                "bad_signature",
                "insufficient_funds"
            ]
        );
        assert!(
            RefusalCode::ALL.iter().filter(|c| c.is_local()).eq([
                RefusalCode::UnknownModel,
                RefusalCode::FeeTooLow
            ]
            .iter())
        );
    }
}
