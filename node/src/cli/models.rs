//! `genmint models hash DIR`: print a model directory's hash (what the chain records and peers advertise).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Print the model hash of a model directory.
    Hash {
        /// Model directory (diffusers layout plus genmint-model.json).
        dir: PathBuf,
    },
}

pub fn run(command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Hash { dir } => {
            println!("{}", genmint_model_runtime::model_hash(&dir)?);
            Ok(())
        }
    }
}
