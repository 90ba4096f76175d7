//! Local development network: finds the tools `scripts/setup.sh` installs and runs anvil and Kubo
//! as child processes on loopback, for `genmint dev` and the end-to-end tests.

pub mod anvil;
pub mod kubo;

use std::path::PathBuf;

/// The tools folder `scripts/setup.sh` fills: `$GENMINT_TOOLS`, else the checkout's `.tools`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("GENMINT_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"),
    }
}

/// Where the tools installed by `scripts/setup.sh` live: `$GENMINT_TOOLS/bin`, else the checkout's
/// `.tools/bin`.
pub fn tools_bin_dir() -> PathBuf {
    tools_dir().join("bin")
}

/// Where `scripts/setup.sh` installs Python packages (`pip install --target`): the MiniLM text
/// encoder of the default model.
pub fn tools_python_dir() -> PathBuf {
    tools_dir().join("python")
}

/// The path of one installed tool (`anvil`, `forge`, `ipfs`, ...), or an error that says how to
/// install it.
pub fn tool_path(name: &str) -> Result<PathBuf, MissingTool> {
    let path = tools_bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(MissingTool { name: name.to_owned(), looked_in: tools_bin_dir() })
    }
}

/// A tool that `scripts/setup.sh` should have installed is not there.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{name}` not found in {looked_in:?}: run scripts/setup.sh (or set GENMINT_TOOLS to its tools folder)"
)]
pub struct MissingTool {
    pub name: String,
    pub looked_in: PathBuf,
}
