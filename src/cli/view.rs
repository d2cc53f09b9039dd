//! `vortexdb view STORE [--port N] [--sample S]`: the browser viewer is the Python
//! package's (`python -m vortexdb view`, with its `view` extra: neuroglancer), so this
//! command runs it with the interpreter named by `VORTEX_PYTHON` (default `python3`),
//! forwarding the arguments (see `python.rs`). The store must exist (checked here).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use vortexdb::{DB_FILE, Error, Result};

use super::python::PythonCommand;

/// The viewer: `python -m vortexdb view`.
const VIEW: PythonCommand = PythonCommand {
    name: "view",
    needs: &["vortexdb", "neuroglancer"],
    hint: HINT,
};

/// What to do when the interpreter cannot run the viewer.
const HINT: &str = "the viewer is the Python package's: install it with \
                    `pip install \"./bindings/python[view]\"` (from the repository root), \
                    or set VORTEX_PYTHON to an interpreter that has it (e.g. \
                    VORTEX_PYTHON=.venv-py/bin/python)";

/// Arguments of `view`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Port to listen on, on 127.0.0.1 (default: a free one).
    #[arg(long)] pub port: Option<u16>,
    /// Sample shown first (default: the first).
    #[arg(long)] pub sample: Option<String>,
}

/// Run `view`: the viewer's exit status (when it does not replace this process).
pub fn view(a: &ViewArgs) -> Result<u8> {
    // What `Store::open` would say, before starting Python for nothing.
    let reason = if !a.store.is_dir() {
        Some("no such directory".to_string())
    } else if !a.store.join(DB_FILE).is_file() {
        Some(format!("no {DB_FILE} in it"))
    } else {
        None
    };
    if let Some(reason) = reason {
        let path = a.store.clone();
        return Err(Error::NotAStore { path, reason });
    }
    let mut args: Vec<OsString> = vec![a.store.clone().into_os_string()];
    if let Some(p) = a.port {
        args.extend(["--port".into(), p.to_string().into()]);
    }
    if let Some(s) = &a.sample {
        args.extend(["--sample".into(), s.into()]);
    }
    VIEW.run(&args)
}
