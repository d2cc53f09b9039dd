//! `vortexdb archive ...`: archives of shards on Ray are the Python package's
//! (`vortexdb.archive`, Ray from its `ray` extra), so this command runs
//! `python -m vortexdb archive ...` with the interpreter named by `VORTEX_PYTHON`
//! (see `python.rs`), forwarding every argument.

use std::ffi::OsString;

use clap::Args;
use vortexdb::Result;

use super::python::PythonCommand;

/// `python -m vortexdb archive`.
const ARCHIVE: PythonCommand = PythonCommand {
    name: "archive",
    needs: &["vortexdb"],
    hint: "archives are the Python package's: install it with \
           `pip install \"./bindings/python[ray]\"` (from the repository root), or set \
           VORTEX_PYTHON to an interpreter that has it (e.g. VORTEX_PYTHON=.venv-py/bin/python)",
};

/// Arguments of `archive`: passed on whole.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// `create`, `ingest`, `list`, `check`, `add-shard` or `query`, and their
    /// arguments (`vortexdb archive --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// Run `archive`: its exit status (when it does not replace this process).
pub fn archive(a: &ArchiveArgs) -> Result<u8> {
    ARCHIVE.run(&a.args)
}
