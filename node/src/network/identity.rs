//! The node's libp2p identity: an ed25519 key kept in `<data dir>/peer.key` so the peer id survives
//! restarts (other nodes' bootstrap lists and provider records name it).

use std::path::Path;

use std::path::PathBuf;

use genmint_p2p::Keypair;

use crate::fs::FileError;

/// The file name of the peer key inside the data dir.
pub const PEER_KEY_FILE: &str = "peer.key";

/// Why the peer key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path:?} is not a libp2p key; move it away to get a new peer id")]
    NotAKey { path: PathBuf },
    #[error("encoding the new peer key: {0}")]
    Encode(String),
    #[error(transparent)]
    File(#[from] FileError),
}

/// Reads the peer key from the data dir, creating it (mode 0600) on first use.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair, IdentityError> {
    let path = data_dir.join(PEER_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|_| IdentityError::NotAKey { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding().map_err(|e| IdentityError::Encode(e.to_string()))?;
            write_private(&path, &bytes)?;
            tracing::info!(peer = %keypair.public().to_peer_id(), path = %path.display(), "created peer key");
            Ok(keypair)
        }
        Err(e) => Err(FileError::on("reading", &path)(e).into()),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(FileError::on("creating", path))?;
    Ok(file.write_all(bytes).map_err(FileError::on("writing", path))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap().public().to_peer_id();
        let second = load_or_create(dir.path()).unwrap().public().to_peer_id();
        assert_eq!(first, second);
        std::fs::write(dir.path().join(PEER_KEY_FILE), b"junk").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("peer.key"), "{err}");
    }
}
