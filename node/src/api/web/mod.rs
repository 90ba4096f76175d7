//! The web page every node serves, from the binary itself (nothing is fetched from elsewhere):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | generate: the form, the creator's wallet (EIP-1193), the job's live state |
//! | `GET /tokens/{id}` | a token: image, prompt, settings, chain record, the verification report; OpenGraph tags |
//! | `GET /gallery?creator=&model=&node=&cursor=` | the contract's tokens, newest first |
//! | `GET /assets/app.js`, `/assets/app.css` | the script (bundled from `node/web/src` by `scripts/web-bundle.sh`) and stylesheet |
//!
//! The token and gallery pages are rendered here, so they work without the script and preview
//! when shared; the generate page is the script's. No key ever reaches the node: the creator's
//! wallet signs in the browser.

mod html;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, ApiState};
use html::Page;

/// The bundled script, committed so `cargo build` needs no JavaScript tools.
const APP_JS: &str = include_str!("../../../web/dist/app.js");
const APP_CSS: &str = include_str!("../../../web/src/app.css");
/// The generate page's body; the script brings it to life.
const GENERATE_HTML: &str = include_str!("../../../web/src/generate.html");

/// What the page needs to know beyond what the API says.
#[derive(Debug, Clone)]
pub struct PageConfig {
    /// The base URL the node is reached at (links, previews, metadata's `external_url`).
    pub public_url: String,
    /// The RPC URL offered to wallets that lack the chain, if any.
    pub wallet_rpc_url: Option<String>,
    /// Offer the in-page development wallet (`genmint dev` only).
    pub dev_wallet: bool,
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(generate))
        .route("/gallery", get(pages::gallery))
        .route("/tokens/{id}", get(pages::token))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn generate(State(node): State<Arc<ApiState>>) -> Html<String> {
    let config = json!({
        "chainId": node.chain.chain_id(),
        "contract": node.chain.address().to_checksum(None),
        "walletRpcUrl": node.page.wallet_rpc_url,
        "devWallet": node.page.dev_wallet,
        "minFeeWei": node.jobs.min_fee().to_string(),
    });
    Html(
        Page {
            title: "Generate",
            description: "Sign a prompt with your wallet; a genmint node generates the picture and mints it to you, with provenance anyone can check.",
            preview: None,
            name: "generate",
            config: Some(config.to_string()),
            body: GENERATE_HTML.to_owned(),
        }
        .render(),
    )
}

/// An API error as a page: the status and the sentence that says what to do.
fn error_page(error: ApiError) -> Response {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"refusal\" role=\"alert\">{}</p>\n<p><a href=\"/gallery\">Back to the gallery</a></p>",
        html::escape(error.status.canonical_reason().unwrap_or("Error")),
        html::escape(&error.message)
    );
    let page = Page {
        title: "Not available",
        description: &error.message,
        preview: None,
        name: "error",
        config: None,
        body,
    };
    (error.status, Html(page.render())).into_response()
}
