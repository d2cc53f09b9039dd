//! Finding and loading the ONNX Runtime shared library, once per process. A failed
//! load is not remembered: the next call looks again (a library installed meanwhile,
//! e.g. `pip install onnxruntime` in a running notebook, is found without a restart).
//!
//! The library is loaded dynamically (`ort`'s `load-dynamic`), from the first of:
//! `ORT_DYLIB_PATH`; the library given to [`prefer_library`]; `.ort/lib/` in the
//! working directory or above the executable (written by `scripts/setup-ort.sh` from the
//! `onnxruntime` PyPI wheel); the `onnxruntime` package of a `.venv` found the same way.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// ONNX Runtime version the crate is built against (`ort` feature `api-31`).
pub const ORT_VERSION: &str = "1.31.1";

/// How to provision the library, appended to every "not found" error.
pub const PROVISION_HINT: &str = "run `bash scripts/setup-ort.sh` in the vortexdb checkout (it \
    fetches the onnxruntime==1.31.1 wheel from PyPI into .ort/lib; `--gpu` fetches \
    onnxruntime-gpu), or set ORT_DYLIB_PATH to a libonnxruntime.so.1.31.1";

static PREFERRED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Load ONNX Runtime from `path` unless `ORT_DYLIB_PATH` is set (the Python package
/// passes the library inside the installed `onnxruntime` wheel). Returns false when
/// the runtime is already loaded (it stays as is); before that, the latest call wins.
pub fn prefer_library(path: PathBuf) -> bool {
    if ENV.get().is_some() {
        return false;
    }
    *PREFERRED.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    true
}

/// The loaded runtime: set once, on the first successful load only.
static ENV: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();

/// Held while a load is tried, so that two threads do not load it at once.
static LOADING: Mutex<()> = Mutex::new(());

fn lib_in(dir: &Path) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "onnxruntime.dll")
        })
        .collect();
    // Prefer the fully versioned file name (the real file, not a link).
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

fn venv_libs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let lib = root.join(".venv").join("lib");
    if let Ok(rd) = std::fs::read_dir(&lib) {
        for e in rd.flatten() {
            out.push(
                e.path()
                    .join("site-packages")
                    .join("onnxruntime")
                    .join("capi"),
            );
        }
    }
    out
}

/// Directories searched for the library, in order (after `ORT_DYLIB_PATH`).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().take(4).map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    let mut dirs = Vec::new();
    for r in roots {
        dirs.push(r.join(".ort").join("lib"));
        dirs.extend(venv_libs(&r));
    }
    dirs.dedup();
    dirs
}

/// Path of the library that [`environment`] would load.
pub fn locate() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(Error::MissingRuntime(format!(
            "ORT_DYLIB_PATH={} does not name a file; {PROVISION_HINT}",
            p.display()
        )));
    }
    if let Some(p) = PREFERRED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    let dirs = search_dirs();
    for d in &dirs {
        if let Some(p) = lib_in(d) {
            return Ok(p);
        }
    }
    Err(Error::MissingRuntime(format!(
        "ONNX Runtime shared library (libonnxruntime.so.{ORT_VERSION}) not found in ORT_DYLIB_PATH, \
         .ort/lib or a .venv near the working directory or the executable; {PROVISION_HINT}"
    )))
}

/// The process-wide ONNX Runtime environment, loading the library on first use. A
/// failure is returned, not kept: the next call tries again.
pub(crate) fn environment() -> Result<&'static ort::environment::Environment> {
    if let Some((_, env)) = ENV.get() {
        return Ok(env);
    }
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, env)) = ENV.get() {
        return Ok(env);
    }
    let path = locate()?;
    let builder = ort::init_from(&path).map_err(|e| {
        Error::MissingRuntime(format!(
            "cannot load ONNX Runtime from {}: {e}; {PROVISION_HINT}",
            path.display()
        ))
    })?;
    let env = builder
        .with_name("vortexdb")
        .with_telemetry(false)
        .build()
        .map_err(|e| {
            Error::MissingRuntime(format!(
                "cannot start ONNX Runtime from {}: {e}",
                path.display()
            ))
        })?;
    log::debug!("ONNX Runtime loaded from {}", path.display());
    Ok(&ENV.get_or_init(|| (path, env)).1)
}

/// The library file loaded by this process, once ONNX Runtime has been initialised.
pub fn loaded_library() -> Option<PathBuf> {
    ENV.get().map(|(p, _)| p.clone())
}
