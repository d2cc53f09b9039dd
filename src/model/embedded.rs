//! The default model (`models/default`, ~1.9 MB of ONNX) compiled into the binary, so
//! that `vortexdb demo` and `vortexdb models add STORE default` work from anywhere,
//! without the repository beside the binary.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The name that selects the embedded model where a model directory is expected.
pub const NAME: &str = "default";

const FILES: [(&str, &[u8]); 5] = [
    (
        "manifest.json",
        include_bytes!("../../models/default/manifest.json"),
    ),
    (
        "image_3d.onnx",
        include_bytes!("../../models/default/image_3d.onnx"),
    ),
    (
        "image_2d.onnx",
        include_bytes!("../../models/default/image_2d.onnx"),
    ),
    (
        "genes.onnx",
        include_bytes!("../../models/default/genes.onnx"),
    ),
    (
        "predictor.onnx",
        include_bytes!("../../models/default/predictor.onnx"),
    ),
];

/// Write the embedded default model into `dir` (created), returning `dir`.
pub fn write_to(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, bytes) in FILES {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    Ok(dir.to_path_buf())
}

/// `path` itself when it exists; the embedded model written to a fresh directory under
/// the system's temporary directory when `path` is the bare name `default`.
pub fn resolve(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if path.exists() || path != Path::new(NAME) {
        return Ok((path.to_path_buf(), None));
    }
    let tmp = std::env::temp_dir().join(format!("vortexdb-default-model-{}", std::process::id()));
    write_to(&tmp)?;
    Ok((tmp.clone(), Some(tmp)))
}
