//! A file operation that failed, naming the file and what was being done to it, so every such
//! error reads the same: `writing "/data/images/0x….png": No space left on device`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{action} {path:?}: {source}")]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// Turns an I/O error from `action` on `path` into a [`FileError`] (for `map_err`).
    pub fn on<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
        move |source| FileError { action, path: path.to_owned(), source }
    }
}
