//! `vortexdb view STORE [--port N] [--sample S]`: the browser viewer is the Python
//! package's (`python -m vortexdb view`, with its `view` extra: neuroglancer), so this
//! command runs it with the interpreter named by `VORTEX_PYTHON` (default `python3`),
//! forwarding the arguments. The store must exist (checked here). The interpreter is
//! first asked whether it can find the `vortexdb` and `neuroglancer` packages (a clear
//! error with the way to install them otherwise); then, on Unix, it replaces this
//! process (exec), so Ctrl-C, the exit status and any signal are the viewer's own, with
//! nothing left waiting in between. Elsewhere it runs as a child whose exit status is
//! forwarded. The library knows nothing of this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Args;
use vortexdb::{DB_FILE, Error, Result};

/// The environment variable naming the Python interpreter that runs the viewer.
pub const PYTHON_ENV: &str = "VORTEX_PYTHON";

/// What to do when the interpreter cannot run the viewer.
const HINT: &str = "the viewer is the Python package's: install it with \
                    `pip install \"./bindings/python[view]\"` (from the repository root), \
                    or set VORTEX_PYTHON to an interpreter that has it (e.g. \
                    VORTEX_PYTHON=.venv-py/bin/python)";

/// Python that prints the viewer's packages it cannot find (nothing when both are
/// there), without importing them.
const PROBE: &str = "import importlib.util as u\n\
                     print(' '.join(m for m in ('vortexdb', 'neuroglancer') \
                     if u.find_spec(m) is None))";

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
    let (python, named) = match std::env::var_os(PYTHON_ENV) {
        Some(p) if !p.is_empty() => {
            let named = format!("'{}' (VORTEX_PYTHON)", p.to_string_lossy());
            (p, named)
        }
        _ => (
            OsString::from("python3"),
            "'python3' (VORTEX_PYTHON is not set)".to_string(),
        ),
    };
    probe(&python, &named)?;
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "vortexdb", "view"]).arg(&a.store);
    if let Some(p) = a.port {
        cmd.arg("--port").arg(p.to_string());
    }
    if let Some(s) = &a.sample {
        cmd.arg("--sample").arg(s);
    }
    run(cmd, &named)
}

/// The error for an interpreter that cannot run the viewer.
fn unusable(message: String) -> Error {
    Error::bad_input("view", format!("{message}; {HINT}"))
}

/// Check that `python` runs and finds the viewer's packages.
fn probe(python: &OsString, named: &str) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| unusable(format!("cannot run the Python interpreter {named}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(unusable(format!(
            "{named} did not run as Python 3 ({}{}{last})",
            out.status,
            if last.is_empty() { "" } else { ": " }
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if !missing.is_empty() {
        return Err(unusable(format!(
            "the Python interpreter {named} cannot import {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Replace this process with the viewer (Unix): only returns on failure.
#[cfg(unix)]
fn run(mut cmd: Command, named: &str) -> Result<u8> {
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    Err(unusable(format!(
        "cannot run the Python interpreter {named}: {e}"
    )))
}

/// Run the viewer as a child and forward its exit status (the child shares the
/// console, so Ctrl-C reaches it).
#[cfg(not(unix))]
fn run(mut cmd: Command, named: &str) -> Result<u8> {
    let status = cmd
        .status()
        .map_err(|e| unusable(format!("cannot run the Python interpreter {named}: {e}")))?;
    Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
}
