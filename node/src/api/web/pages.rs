//! The server-rendered pages: a token (what it is, where it came from, and every verification
//! check by name) and the gallery (the contract's tokens, newest first, filtered and paged).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::error_page;
use super::html::{Page, Preview, escape, query};
use crate::api::tokens::{ListParams, list_params};
use crate::api::{ApiError, ApiState, TokenProvenance, token_id, token_provenance};
use crate::gallery::{GalleryToken, TokenQuery};
use crate::ipfs::{Cid, ContentStore};
use crate::provenance::eip712::GenerationRequest;
use crate::provenance::ids::JobId;
use crate::provenance::metadata::TokenMetadata;
use crate::verify::MAX_METADATA_BYTES;

/// `GET /tokens/{id}`.
pub async fn token(State(node): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match token_page(&node, &id).await {
        Ok(page) => Html(page).into_response(),
        Err(e) => error_page(e),
    }
}

/// The token's metadata from IPFS, if it can be read.
async fn metadata(node: &ApiState, cid: &str) -> Option<TokenMetadata> {
    let cid: Cid = cid.parse().ok()?;
    let bytes = node.ipfs.cat(&cid, MAX_METADATA_BYTES).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(label), value);
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

async fn token_page(node: &ApiState, id: &str) -> Result<String, ApiError> {
    let token = token_id(id)?;
    let report = token_provenance(node, token).await?;
    let record = node.chain.provenance(token).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let metadata = match &record {
        Some(record) => metadata(node, &record.metadata_cid).await,
        None => None,
    };
    let listed = node.gallery.token(token).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let hex = JobId::of_token(token).to_string();
    let request: Option<GenerationRequest> =
        metadata.as_ref().and_then(|m| serde_json::from_value(m.provenance.request.clone()).ok());
    let prompt = metadata.as_ref().map_or("(the metadata cannot be read)", |m| m.prompt.as_str());
    let image = format!("/v1/tokens/{hex}/image");
    let mut body = format!(
        "<article class=\"token\">\n<h1>{title}</h1>\n<figure><img src=\"{image}\" alt=\"{alt}\" width=\"256\" height=\"256\">\
         <figcaption>{prompt}</figcaption></figure>\n",
        title = escape(metadata.as_ref().map_or("genmint token", |m| m.name.as_str())),
        alt = escape(&format!("The generated picture for: {prompt}")),
        prompt = escape(prompt),
    );
    body.push_str("<section aria-labelledby=\"made\"><h2 id=\"made\">How it was made</h2>\n<dl>\n");
    if let Some(m) = &metadata {
        let p = &m.provenance;
        row(&mut body, "Model", &format!("{} {}", escape(&p.model_name), code(&p.model_hash)));
        if let Some(r) = &request {
            if !r.negativePrompt.is_empty() {
                row(&mut body, "Negative prompt", &escape(&r.negativePrompt));
            }
            row(&mut body, "Seed", &code(&r.seed.to_string()));
            row(&mut body, "Fee", &format!("{} wei", r.fee));
        }
        row(&mut body, "Size", &format!("{}×{}", p.width, p.height));
        let e = &p.envelope;
        row(
            &mut body,
            "Steps, guidance, scheduler",
            &escape(&format!("{}, {}, {}", e.steps, e.guidance, e.scheduler)),
        );
        row(
            &mut body,
            "Engine",
            &escape(&format!("{}, {}, {}, {}", e.engine, e.noise, e.dtype, e.device_class)),
        );
        row(&mut body, "Pixel digest", &code(&p.pixel_digest));
        row(&mut body, "Image", &code(&format!("ipfs://{}", p.image_cid)));
    }
    if let Some(record) = &record {
        row(
            &mut body,
            "Creator",
            &format!(
                "<a href=\"/gallery?{}\">{}</a>",
                escape(&query(&[("creator", format!("{:#x}", record.creator))])),
                code(&record.creator.to_checksum(None))
            ),
        );
        row(
            &mut body,
            "Node",
            &format!(
                "<a href=\"/gallery?{}\">{}</a>",
                escape(&query(&[("node", format!("{:#x}", record.node))])),
                code(&record.node.to_checksum(None))
            ),
        );
        row(&mut body, "Metadata", &code(&format!("ipfs://{}", record.metadata_cid)));
        row(&mut body, "Mint block", &record.mint_block.to_string());
    }
    if let Some(listed) = &listed {
        row(&mut body, "Transaction", &code(&listed.tx_hash.to_string()));
    }
    row(&mut body, "Token id", &format!("{} ({})", code(&token.to_string()), code(&hex)));
    row(
        &mut body,
        "Contract",
        &format!("{} on chain {}", code(&report.report.contract), report.report.chain_id),
    );
    body.push_str("</dl>\n");
    if let (Some(m), Some(r)) = (&metadata, &request) {
        let again = query(&[
            ("model", m.provenance.model_hash.clone()),
            ("prompt", r.prompt.clone()),
            ("negative", r.negativePrompt.clone()),
            ("seed", r.seed.to_string()),
            ("width", r.width.to_string()),
            ("height", r.height.to_string()),
            ("steps", r.steps.to_string()),
            ("guidance", format!("{}", f64::from(r.guidance) / 100.0)),
            ("scheduler", r.scheduler.clone()),
        ]);
        let _ = writeln!(
            body,
            "<p><a class=\"button\" href=\"/?{}\">Generate again with these settings</a></p>",
            escape(&again)
        );
    }
    body.push_str("</section>\n");
    body.push_str(&report_section(&report));
    body.push_str("</article>");
    let description = format!("“{prompt}” — generated and minted with provenance anyone can check.");
    let url = format!("{}/tokens/{hex}", node.page.public_url);
    Ok(Page {
        title: metadata.as_ref().map_or("genmint token", |m| m.name.as_str()),
        description: &description,
        preview: Some(Preview { url, image: format!("{}{image}", node.page.public_url) }),
        name: "token",
        config: None,
        body,
    }
    .render())
}

/// The verification report: one row per check, by name, then the peers' spot checks.
fn report_section(provenance: &TokenProvenance) -> String {
    let report = &provenance.report;
    let verdict = if report.ok { "Every check passed." } else { "Some checks failed: see below." };
    let mut out = format!(
        "<section aria-labelledby=\"checks\"><h2 id=\"checks\">Verification</h2>\n<p class=\"verdict {}\">{verdict} \
         (the same report as <a href=\"/v1/tokens/{}/provenance\">GET /v1/tokens/…/provenance</a> and <code>genmint verify</code>)</p>\n\
         <table class=\"checks\"><thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Result</th><th scope=\"col\">Detail</th></tr></thead><tbody>\n",
        if report.ok { "ok" } else { "failed" },
        escape(&report.token_id),
    );
    for check in &report.checks {
        let _ = writeln!(
            out,
            "<tr data-check=\"{name}\"><th scope=\"row\"><code>{name}</code></th><td class=\"{class}\">{result}</td><td>{detail}</td></tr>",
            name = check.name,
            class = if check.ok { "ok" } else { "failed" },
            result = if check.ok { "✓ passed" } else { "✗ failed" },
            detail = escape(&check.detail),
        );
    }
    out.push_str("</tbody></table>\n");
    let peers = &provenance.peer_checks;
    let _ = writeln!(
        out,
        "<h3>Peer spot checks</h3>\n<p class=\"verdict {}\">{}</p>",
        if peers.peer_checks_ok { "ok" } else { "failed" },
        escape(&peers.peer_checks_summary)
    );
    if !peers.peer_checks.is_empty() {
        out.push_str("<ul class=\"peer-checks\">\n");
        for check in &peers.peer_checks {
            let _ = writeln!(
                out,
                "<li><code>{}</code>: {:?}{}</li>",
                escape(&check.checker),
                check.outcome,
                if check.same_envelope { "" } else { " (other hardware)" }
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    out
}

/// `GET /gallery`.
pub async fn gallery(
    State(node): State<Arc<ApiState>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let page = async {
        let query = list_params(params)?;
        let page = node.gallery.page(query.clone()).await.map_err(|e| ApiError::internal(e.to_string()))?;
        Ok::<_, ApiError>(gallery_page(&query, &page.tokens, page.next_cursor.map(|c| c.to_string())))
    };
    match page.await {
        Ok(page) => Html(page).into_response(),
        Err(e) => error_page(e),
    }
}

fn short(text: &str) -> String {
    if text.len() > 12 { format!("{}…{}", &text[..6], &text[text.len() - 4..]) } else { text.to_owned() }
}

fn gallery_page(filter: &TokenQuery, tokens: &[GalleryToken], next: Option<String>) -> String {
    let title = match (&filter.creator, &filter.model, &filter.node) {
        (Some(creator), _, _) => format!("Tokens of creator {}", short(&creator.to_checksum(None))),
        (_, Some(model), _) => format!("Tokens of model {}", short(&model.to_string())),
        (_, _, Some(node)) => format!("Tokens minted by node {}", short(&node.to_checksum(None))),
        _ => "Recent tokens".to_owned(),
    };
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"filters\"><a href=\"/gallery\">All</a> <a id=\"mine\" href=\"/gallery\" hidden>Mine</a></p>\n",
        escape(&title)
    );
    if tokens.is_empty() {
        body.push_str("<p>No tokens yet. <a href=\"/\">Generate one.</a></p>\n");
    }
    body.push_str("<ul class=\"grid\">\n");
    for token in tokens {
        let prompt = token.prompt.as_deref().unwrap_or("(metadata not readable)");
        let model = match (&token.model_hash, &token.model_name) {
            (Some(hash), Some(name)) => format!(
                "<a href=\"/gallery?{}\">{}</a>",
                escape(&query(&[("model", hash.to_string())])),
                escape(name)
            ),
            _ => "unknown model".to_owned(),
        };
        let _ = writeln!(
            body,
            "<li class=\"card\"><a href=\"/tokens/{id}\"><img src=\"/v1/tokens/{id}/image\" alt=\"{alt}\" width=\"128\" height=\"128\" loading=\"lazy\">\
             <span class=\"prompt\">{prompt}</span></a><span class=\"meta\">{model} · by <a href=\"/gallery?{creator_q}\">{creator}</a> · block {block}</span></li>",
            id = token.id,
            alt = escape(&format!("The generated picture for: {prompt}")),
            prompt = escape(prompt),
            creator_q = escape(&query(&[("creator", format!("{:#x}", token.creator))])),
            creator = escape(&short(&token.creator.to_checksum(None))),
            block = token.block_number,
        );
    }
    body.push_str("</ul>\n");
    if let Some(cursor) = next {
        let mut pairs = vec![("cursor", cursor)];
        pairs.extend(filter.creator.map(|c| ("creator", format!("{c:#x}"))));
        pairs.extend(filter.model.map(|m| ("model", m.to_string())));
        pairs.extend(filter.node.map(|n| ("node", format!("{n:#x}"))));
        let _ = writeln!(
            body,
            "<p><a class=\"button\" rel=\"next\" href=\"/gallery?{}\">Older tokens</a></p>",
            escape(&query(&pairs))
        );
    }
    Page {
        title: &title,
        description: "Tokens minted with genmint, each with provenance anyone can check.",
        preview: None,
        name: "gallery",
        config: None,
        body,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};

    use super::*;
    use crate::gallery::GalleryCursor;
    use crate::provenance::ids::TxHash;

    #[test]
    fn the_gallery_links_each_token_its_filters_and_the_next_page() {
        let id = JobId(B256::repeat_byte(0x11));
        let token = GalleryToken {
            id,
            token_id: id.token_id(),
            block_number: 9,
            log_index: 0,
            tx_hash: TxHash(B256::ZERO),
            creator: Address::repeat_byte(0xab),
            node: Address::repeat_byte(0xcd),
            image_cid: None,
            metadata_cid: None,
            model_hash: None,
            model_name: None,
            prompt: Some("<b>fox</b>".into()),
            fingerprint: None,
        };
        let filter = TokenQuery { creator: Some(Address::repeat_byte(0xab)), ..TokenQuery::default() };
        let next = GalleryCursor { block_number: 9, log_index: 0 }.to_string();
        let page = gallery_page(&filter, &[token], Some(next));
        assert!(page.contains(&format!("href=\"/tokens/{id}\"")), "{page}");
        assert!(page.contains("&lt;b&gt;fox&lt;/b&gt;") && !page.contains("<b>fox"), "{page}");
        assert!(page.contains("Tokens of creator 0xABaB"), "{page}");
        assert!(
            page.contains(&format!("href=\"/gallery?cursor=9.0&amp;creator=0x{}\"", "ab".repeat(20))),
            "{page}"
        );
    }
}
