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
    /// A file or a tool failed.
    #[error("{0}")]
    Io(String),
}
