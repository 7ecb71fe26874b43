//! Why the matrix could not run.

/// Why the matrix could not run.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Something the user can fix (a bad `--kernel`, a missing tool).
    #[error("{msg}")]
    User {
        /// What is wrong.
        msg: String,
        /// How to fix it.
        hint: String,
    },
    /// A file, directory or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A tool pktfate runs (apt-get, dpkg-deb) failed, or left out what
    /// it should have made.
    #[error("{0}")]
    Tool(String),
}

impl MatrixError {
    /// An OS error while doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        MatrixError::Io {
            what: what.into(),
            source,
        }
    }
}
