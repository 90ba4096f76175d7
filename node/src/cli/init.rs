//! `genmint init`: create a data dir with a default `genmint.toml`, a fresh operator key, the C2PA
//! signing certificate bound to it and the built-in default model in `models/default`.

use std::io::Write;
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use clap::Args;
use genmint_model_runtime::DEFAULT_MODEL_NAME;

use crate::config::{CONFIG_FILE, Config, OPERATOR_KEY_FILE};
use crate::provenance::credentials::{CERT_FILE, Credentials};

#[derive(Debug, Args)]
pub struct InitArgs {}

pub fn run(data_dir: &Path, _args: InitArgs) -> Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {data_dir:?}"))?;
    if data_dir.join(CONFIG_FILE).exists() {
        println!("kept existing {}", data_dir.join(CONFIG_FILE).display());
    } else {
        Config::default().save(data_dir)?;
        println!("wrote {}", data_dir.join(CONFIG_FILE).display());
    }
    let key_path = data_dir.join(OPERATOR_KEY_FILE);
    let signer = match crate::server::operator_key(data_dir) {
        Ok(signer) if key_path.exists() => {
            println!("kept existing operator key {}", key_path.display());
            signer
        }
        _ => {
            let signer = PrivateKeySigner::random();
            write_secret(&key_path, &format!("0x{}\n", hex::encode(signer.to_bytes())))?;
            println!("wrote a new operator key to {}", key_path.display());
            signer
        }
    };
    let (credentials, created) = Credentials::load_or_create(data_dir, &signer)?;
    println!(
        "{} the content-credentials signing certificate {} (sha256 {}), bound to the operator key",
        if created { "created" } else { "kept" },
        data_dir.join(CERT_FILE).display(),
        credentials.fingerprint()
    );
    let model_dir = data_dir.join("models/default");
    if super::models::is_empty_dir(&model_dir) {
        let hash = super::models::install_default(&model_dir)?;
        println!("installed the default model {DEFAULT_MODEL_NAME} {hash} in {}", model_dir.display());
    } else {
        println!("kept the existing model in {}", model_dir.display());
    }
    println!("operator address: {}", signer.address());
    println!(
        "next: ask the contract owner to register this operator, set chain.contract in genmint.toml, then `genmint node`"
    );
    Ok(())
}

/// Writes a secret readable by its owner only.
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {path:?}"))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {path:?}"))
}
