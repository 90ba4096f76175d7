//! `genmint cancel JOB_ID`: sign the job's EIP-712 `CancelJob` with the creator key `generate`
//! used and send it to the node (`DELETE /v1/jobs/{id}`); the node cancels only for the creator.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use super::generate::{CREATOR_KEY_FILE, creator_key, node_domain, now_unix, read_answer, send};
use crate::provenance::eip712::SignedCancel;
use crate::provenance::ids::JobId;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job id (0x + 64 hex digits, as `genmint generate` prints it).
    pub job_id: JobId,
    /// Seconds from now after which the node no longer takes this cancel.
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
    /// The node's HTTP API.
    #[arg(long, env = "GENMINT_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// Creator key file (default: creator.key in the data dir): the key that signed the request.
    #[arg(long, env = "GENMINT_CREATOR_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

pub async fn run(data_dir: &Path, args: CancelArgs) -> Result<()> {
    if args.key_file.is_none() && !data_dir.join(CREATOR_KEY_FILE).exists() {
        bail!(
            "no creator key at {}: only the key that signed the request can cancel it (pass --key-file)",
            data_dir.join(CREATOR_KEY_FILE).display()
        );
    }
    let creator = creator_key(data_dir, args.key_file.as_deref())?;
    let client = reqwest::Client::new();
    let node = args.node.trim_end_matches('/');
    let domain = node_domain(&client, node).await?;
    let id = args.job_id;
    let cancel = SignedCancel::sign(&creator, id.0, now_unix() + args.deadline_secs, &domain)?;
    let request = client.delete(format!("{node}/v1/jobs/{id}")).json(&cancel);
    let job = read_answer(send(request, node).await?, &format!("the node did not cancel job {id}")).await?;
    println!("job {id} {}", job["state"].as_str().unwrap_or("?"));
    Ok(())
}
