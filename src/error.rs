//! Typed errors of the library.
//!
//! One `#[non_exhaustive]` enum, [`Error`], whose variants carry structured fields a
//! caller can match on (the unknown sample and the known ones, the unknown genes with
//! their close matches, both dimensions of a mismatch, the file and what is wrong with
//! it, the pid holding a lock). Messages name files and library parameters, never a
//! command-line flag, and carry no "next step" advice: the faces (the `vortexdb` binary,
//! the Python package) add their own hints. [`Error::layer`] groups the variants by the
//! layer that raises them (see docs/ARCHITECTURE.md for why this is one enum).

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An unknown gene and the known genes closest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownGene {
    /// The gene asked for.
    pub gene: String,
    /// Close matches among the known genes (edit distance <= 2 or a shared prefix),
    /// best first, at most 3.
    pub suggestions: Vec<String>,
}

impl std::fmt::Display for UnknownGene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.suggestions.is_empty() {
            write!(f, "{} (no close match)", self.gene)
        } else {
            write!(
                f,
                "{} (did you mean {}?)",
                self.gene,
                self.suggestions.join(", ")
            )
        }
    }
}

/// The layer an error comes from (for grouping; the variant says what happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layer {
    /// The caller's input: an argument, a file, a name.
    Input,
    /// The store: opening, locking, versions, damage, transactions.
    Store,
    /// The model runtime: ONNX Runtime, execution providers, inference.
    Model,
    /// The vector index.
    Index,
}

/// Everything that can go wrong in vortexdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter of a library call is out of range or malformed. `name` is the
    /// parameter's name in the library (`k`, `min_pcc`, `um_per_voxel`, ...).
    #[error("{name}: {message}")]
    InvalidArgument {
        /// The parameter at fault.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file's content is malformed, inconsistent or too large.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Other bad input (a row of a batch, a record, a combination of inputs); `what`
    /// names it.
    #[error("{what}: {message}")]
    BadInput {
        /// The input at fault.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A filter left nothing to work on; `stage` says which: `spot_qc` (no spot passed
    /// QC), `gene_filter` (no spot passed the molecular query's gene filter), `spots`
    /// (no spots of the model), `patches` (no 3D patches of the model),
    /// `patch_grid` (the volume is smaller than one patch), `domains` (no stored domains
    /// of these patches).
    #[error("{message}")]
    NothingSelected {
        /// The stage that selected nothing.
        stage: &'static str,
        /// What was asked and what was found.
        message: String,
    },
    /// The caller stopped a long call (an ingest's progress callback returned
    /// `ControlFlow::Break`) after a durable batch: what was written is complete and the
    /// same call resumes from there.
    #[error("{what} interrupted after {done} of {total}; run it again to resume")]
    Interrupted {
        /// What was interrupted (`"ingest of sample 's'"`).
        what: String,
        /// Units done (grid positions of an ingest).
        done: u64,
        /// Units in total.
        total: u64,
    },
    /// An output location exists and is not one the call may replace.
    #[error("{}: {message}", path.display())]
    OutputExists {
        /// The location.
        path: PathBuf,
        /// Why it is left alone.
        message: String,
        /// True when the call has an option to replace it anyway.
        can_overwrite: bool,
    },
    /// A registration computed from the images did not find a trustworthy map: its
    /// score or tissue overlap fell below the minimum, or the map is degenerate.
    #[error("registering {} to {}: {message} (score {score:.3}, overlap {overlap:.3})", moving.display(), fixed.display())]
    RegistrationFailed {
        /// The image registered.
        moving: PathBuf,
        /// The image (or volume) it was registered to.
        fixed: PathBuf,
        /// Correlation after registration.
        score: f64,
        /// Tissue overlap after registration.
        overlap: f64,
        /// What failed.
        message: String,
    },
    /// A sample id that the store does not hold (for the purpose at hand).
    #[error("{name}: sample '{sample}' {}", unknown_sample_detail(.known, .purpose))]
    UnknownSample {
        /// Parameter that named it (`sample`, `reference`, `spots`, `samples`, ...).
        name: String,
        /// The id asked for.
        sample: String,
        /// What the sample lacks (`"is not in this store"`, `"has no spots in this store"`).
        purpose: String,
        /// Ids that would have been accepted.
        known: Vec<String>,
    },
    /// Genes that are not in the panel searched.
    #[error("{name}: unknown gene(s) {within}: {}", .genes.iter().map(|g| g.to_string()).collect::<Vec<_>>().join("; "))]
    UnknownGenes {
        /// Parameter that named them.
        name: String,
        /// The genes and their close matches.
        genes: Vec<UnknownGene>,
        /// The panel searched (`"in the stored spots of model 'm'"`, ...).
        within: String,
    },
    /// Two things that must have the same dimension do not.
    #[error("{}: {what} have dimension {found} but {against} has dimension {expected}", path.display())]
    DimensionMismatch {
        /// The file (or input) holding the vectors.
        path: PathBuf,
        /// What was checked (`"vectors"`, `"queries"`).
        what: String,
        /// Dimension found.
        found: usize,
        /// What it is compared with (`"collection 'c'"`).
        against: String,
        /// Dimension required.
        expected: usize,
    },
    /// No model of that name is registered in the store.
    #[error("no model '{name}' in this store (models: {})", list_or_none(.known))]
    UnknownModel {
        /// The store.
        store: PathBuf,
        /// The name asked for.
        name: String,
        /// Registered models.
        known: Vec<String>,
    },
    /// The store has no model, and the call needs one.
    #[error("this store has no model")]
    NoModel {
        /// The store.
        store: PathBuf,
    },
    /// The store has several models, and the call did not say which.
    #[error("this store has several models ({})", .known.join(", "))]
    AmbiguousModel {
        /// The store.
        store: PathBuf,
        /// Registered models.
        known: Vec<String>,
    },
    /// The directory is not a vortexdb store (or does not exist).
    #[error("{}: not a vortexdb store ({reason})", path.display())]
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
    #[error("unknown collection '{name}' (collections in this store: {})", list_or_none(.known))]
    UnknownCollection {
        /// The requested name.
        name: String,
        /// Existing collections.
        known: Vec<String>,
    },
    /// Stored data failed a checksum or could not be decoded.
    #[error("{}: store is damaged: {message}", path.display())]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The store was written by an incompatible version of vortexdb.
    #[error("{}: schema version {found} is not supported (this build reads {oldest} to {supported})", path.display())]
    Version {
        /// The store file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Oldest version this build opens (older ones are refused).
        oldest: u32,
        /// Version this build writes.
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
    /// The ONNX Runtime library cannot be found or loaded; the message says where it
    /// was looked for.
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

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn unknown_sample_detail(known: &[String], purpose: &str) -> String {
    format!("{purpose} (samples: {})", list_or_none(known))
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn arg(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadInput {
            what: what.into(),
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

    /// Shorthand for [`Error::UnknownSample`] of a sample missing from the store.
    pub fn unknown_sample(name: &str, sample: &str, known: Vec<String>) -> Self {
        Error::UnknownSample {
            name: name.into(),
            sample: sample.into(),
            purpose: "is not in this store".into(),
            known,
        }
    }

    /// The layer that raised the error.
    pub fn layer(&self) -> Layer {
        match self {
            Error::InvalidArgument { .. }
            | Error::BadFile { .. }
            | Error::BadInput { .. }
            | Error::UnknownSample { .. }
            | Error::NothingSelected { .. }
            | Error::Interrupted { .. }
            | Error::OutputExists { .. }
            | Error::RegistrationFailed { .. }
            | Error::UnknownGenes { .. }
            | Error::DimensionMismatch { .. }
            | Error::Io { .. } => Layer::Input,
            Error::UnknownModel { .. }
            | Error::NoModel { .. }
            | Error::AmbiguousModel { .. }
            | Error::NotAStore { .. }
            | Error::Locked { .. }
            | Error::UnknownCollection { .. }
            | Error::Corrupted { .. }
            | Error::Version { .. }
            | Error::ReadOnly(_)
            | Error::Database { .. } => Layer::Store,
            Error::MissingRuntime(_) | Error::Device(_) | Error::Inference(_) => Layer::Model,
            Error::Index(_) => Layer::Index,
        }
    }

    /// True for a failure inside vortexdb or a library it uses (a database error not
    /// caused by the input, ONNX Runtime failing on valid input, an index invariant):
    /// nothing the caller can fix by changing the input or the environment.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Database { .. } | Error::Inference(_) | Error::Index(_)
        )
    }
}
