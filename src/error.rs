//! Typed errors of the library.
//!
//! One enum for the whole crate keeps the public surface small; every variant says
//! which file or argument is at fault so the CLI can print it unchanged. `anyhow` is
//! used only at the binary edge (`main.rs`).

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in vortexdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller supplied bad input (a file, an argument); the message names it.
    #[error("{path}: {message}")]
    BadInput {
        /// The file or argument at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The directory is not a vortexdb store (or does not exist).
    #[error("{}: not a vortexdb store ({reason}); create one with `vortexdb init {}`", path.display(), path.display())]
    NotAStore {
        /// The directory given.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// Another process holds the store's writer lock.
    #[error("{}: store is locked by another writer (pid {pid}); wait for it to finish or open read-only", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid recorded by the holder, if readable.
        pid: String,
    },
    /// A named collection does not exist.
    #[error("unknown collection '{name}' (collections in this store: {known})")]
    UnknownCollection {
        /// The requested name.
        name: String,
        /// Comma-separated list of existing collections.
        known: String,
    },
    /// Stored data failed a checksum or could not be decoded.
    #[error("{}: store is damaged: {message}; run `vortexdb check` and restore from a backup (`vortexdb backup`) if it fails", path.display())]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The store was written by an incompatible version of vortexdb.
    #[error("{}: schema version {found} is not supported (this build reads {supported})", path.display())]
    Version {
        /// The store file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },
    /// The store was opened read-only and a write was attempted.
    #[error("store opened read-only; reopen it for writing to {0}")]
    ReadOnly(&'static str),
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error inside redb not attributable to bad input.
    #[error("{}: database error: {message}", path.display())]
    Database {
        /// The store file.
        path: PathBuf,
        /// The redb message.
        message: String,
    },
    /// The ONNX Runtime library cannot be found or loaded; the message says how to
    /// provision it.
    #[error("ONNX Runtime unavailable: {0}")]
    MissingRuntime(String),
    /// The requested execution provider (e.g. CUDA) could not be registered.
    #[error("execution provider: {0}")]
    Device(String),
    /// ONNX Runtime failed while running a network.
    #[error("inference: {0}")]
    Inference(String),
    /// An error in the HNSW index layer.
    #[error("index: {0}")]
    Index(String),
}

impl Error {
    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error is the user's input rather than an internal failure
    /// (the CLI maps this to exit code 1, everything else to 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::BadInput { .. }
                | Error::NotAStore { .. }
                | Error::Locked { .. }
                | Error::UnknownCollection { .. }
                | Error::Corrupted { .. }
                | Error::Version { .. }
                | Error::ReadOnly(_)
                | Error::Io { .. }
                | Error::MissingRuntime(_)
                | Error::Device(_)
        )
    }
}
