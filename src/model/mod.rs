//! Models: a directory holding `manifest.json` and ONNX files (the contract written by
//! `training/`), checked against its checksums, and run through ONNX Runtime (`ort`).
//!
//! ```no_run
//! use vortexdb::{Model, RunOptions};
//! let model = Model::load("models/default").unwrap();
//! let mut enc = model.network("image_3d", &RunOptions::default()).unwrap();
//! let p = &model.manifest.patch;
//! let batch = ndarray::Array5::<f32>::zeros((2, p.depth, p.channels, p.size_px[0], p.size_px[1]));
//! let emb = enc.embed(batch.view().into_dyn()).unwrap();
//! assert_eq!(emb.shape(), &[2, model.manifest.embedding_dim]);
//! ```

mod embed_file;
pub mod embedded;
mod image;
pub mod runtime;

pub use embed_file::{EmbedFileOptions, EmbedFileOutput};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, ArrayViewD, Ix2};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorRef, ValueType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Manifest format this build reads.
pub const MANIFEST_FORMAT: &str = "vortexdb-model/1";
/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Geometry and intensity normalisation of the patches a network takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchSpec {
    /// Patch height and width in pixels.
    pub size_px: [usize; 2],
    /// Slices per 3D patch (1 for 2D).
    #[serde(default = "one")]
    pub depth: usize,
    /// In-plane pixel size in micrometres.
    pub um_per_px: f64,
    /// Slice spacing in micrometres (defaults to `um_per_px`, isotropic voxels).
    #[serde(default)]
    pub z_um: Option<f64>,
    /// Channels per slice (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Per-channel mean subtracted after scaling intensities to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after the mean.
    pub std: Vec<f32>,
}

fn one() -> usize {
    1
}

impl PatchSpec {
    /// Slice spacing in micrometres.
    pub fn slice_um(&self) -> f64 {
        self.z_um.unwrap_or(self.um_per_px)
    }
}

/// One network of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// ONNX file name, relative to the model directory.
    pub file: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Input name -> comma-separated axis names (e.g. `B,D,C,H,W`).
    pub inputs: BTreeMap<String, String>,
    /// Output name -> axis names.
    pub outputs: BTreeMap<String, String>,
    /// External data files holding the network's weights (ONNX graphs over 2 GiB keep
    /// their tensors beside the graph), each with its checksum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataFileSpec>,
}

/// One external data file of a network (`<network>.onnx.data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFileSpec {
    /// File name, relative to the model directory.
    pub file: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

impl NetworkSpec {
    /// (file, sha256) of the graph and of each external data file, in that order.
    pub fn files(&self) -> Vec<(&str, &str)> {
        std::iter::once((self.file.as_str(), self.sha256.as_str()))
            .chain(
                self.data
                    .iter()
                    .map(|d| (d.file.as_str(), d.sha256.as_str())),
            )
            .collect()
    }
}

/// The gene encoder's panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenePanel {
    /// Gene symbols in input order.
    pub names: Vec<String>,
    /// Number of value bins.
    #[serde(default)]
    pub bins: usize,
}

/// How spot expression is prepared for the gene encoder (`expression` in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpressionSpec {
    /// Counts per spot after library-size normalisation.
    #[serde(default = "default_target")]
    pub normalize_total: f64,
    /// Whether log1p follows the normalisation.
    #[serde(default = "default_true")]
    pub log1p: bool,
    /// Nearest spots averaged into each spot's encoder input (0 or 1 = none).
    #[serde(default)]
    pub smooth_k: usize,
}

fn default_target() -> f64 {
    1e4
}

fn default_true() -> bool {
    true
}

impl Default for ExpressionSpec {
    fn default() -> Self {
        ExpressionSpec {
            normalize_total: 1e4,
            log1p: true,
            smooth_k: 0,
        }
    }
}

/// `manifest.json`, the model contract (docs/ARCHITECTURE.md, "Model contract").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must be [`MANIFEST_FORMAT`].
    pub format: String,
    /// Model name; also names the store collections of its embeddings.
    pub name: String,
    /// Embedding dimension shared by every encoder.
    pub embedding_dim: usize,
    /// True when the encoders emit L2-normalised embeddings.
    #[serde(default)]
    pub normalized: bool,
    /// 3D patch geometry (`image_3d`).
    pub patch: PatchSpec,
    /// 2D patch geometry (`image_2d`), when the model has a 2D encoder.
    #[serde(default)]
    pub patch_2d: Option<PatchSpec>,
    /// Gene encoder panel.
    #[serde(default)]
    pub encoder_genes: Option<GenePanel>,
    /// Genes the predictor outputs, in order.
    #[serde(default)]
    pub predicted_genes: Vec<String>,
    /// Expression preprocessing the gene encoder was trained with.
    #[serde(default)]
    pub expression: ExpressionSpec,
    /// Networks by role: `image_3d`, `image_2d`, `genes`, `predictor`.
    pub networks: BTreeMap<String, NetworkSpec>,
}

/// A model directory whose manifest parsed and whose files match their checksums.
#[derive(Debug, Clone)]
pub struct Model {
    /// The directory.
    pub dir: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest file's text, as stored in a store.
    pub manifest_json: String,
}

/// Where a network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider on the given GPU (needs the `cuda` cargo feature).
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        if s == "cuda" || s == "gpu" {
            return Ok(Device::Cuda(0));
        }
        if let Some(n) = s.strip_prefix("cuda:")
            && let Ok(i) = n.parse::<i32>()
            && i >= 0
        {
            return Ok(Device::Cuda(i));
        }
        Err(Error::arg(
            "device",
            format!("'{s}' is not a device; use cpu, cuda or cuda:N"),
        ))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// How sessions are created.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Execution provider.
    pub device: Device,
    /// Intra-op threads (0 = ONNX Runtime's default, one per core).
    pub threads: usize,
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Manifest {
    /// Parse and validate a manifest's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| Error::bad_file(path, format!("not a valid model manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::bad_file(
                path,
                format!(
                    "format is '{}', this build reads '{MANIFEST_FORMAT}'",
                    m.format
                ),
            ));
        }
        // The name becomes `STORE/models/<name>/` and collection names.
        crate::names::valid_id(&m.name, &format!("{path}: name"))?;
        if m.embedding_dim == 0 || m.embedding_dim > 65_536 {
            return Err(Error::bad_file(
                path,
                format!("embedding_dim {} is not in 1..=65536", m.embedding_dim),
            ));
        }
        if !m.networks.contains_key("image_3d") && !m.networks.contains_key("image_2d") {
            return Err(Error::bad_file(
                path,
                format!(
                    "networks lists no image encoder (image_3d or image_2d); found: {}",
                    if m.networks.is_empty() {
                        "none".to_string()
                    } else {
                        m.networks.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for g in &m.predicted_genes {
            if g.is_empty() || g.len() > 256 || g.chars().any(|c| c.is_control()) {
                return Err(Error::bad_file(
                    path,
                    format!("predicted_genes: {g:?} is not a gene name"),
                ));
            }
            if !seen.insert(g.as_str()) {
                return Err(Error::bad_file(
                    path,
                    format!("predicted_genes: {g:?} is listed twice"),
                ));
            }
        }
        for (what, p) in
            std::iter::once(("patch", &m.patch)).chain(m.patch_2d.as_ref().map(|p| ("patch_2d", p)))
        {
            if p.size_px[0] == 0 || p.size_px[1] == 0 || p.depth == 0 || p.channels == 0 {
                return Err(Error::bad_file(path, format!("{what}: zero-sized patch")));
            }
            if p.size_px[0] > 4096 || p.size_px[1] > 4096 || p.depth > 1024 || p.channels > 4 {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "{what}: patch {} x {} x {} with {} channels is out of range (at most 1024 x 4096 x 4096, 4 channels)",
                        p.depth, p.size_px[0], p.size_px[1], p.channels
                    ),
                ));
            }
            if p.mean.len() != p.channels || p.std.len() != p.channels {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "{what}: mean/std have {}/{} values for {} channels",
                        p.mean.len(),
                        p.std.len(),
                        p.channels
                    ),
                ));
            }
            if p.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(Error::bad_file(
                    path,
                    format!("{what}: std must be positive"),
                ));
            }
            let (lo, hi) = crate::limits::UM_RANGE;
            if !(p.um_per_px.is_finite() && (lo..=hi).contains(&p.um_per_px))
                || p.z_um
                    .is_some_and(|z| !(z.is_finite() && (lo..=hi).contains(&z)))
            {
                return Err(Error::bad_file(
                    path,
                    format!("{what}: pixel sizes must be finite, from {lo} to {hi} um"),
                ));
            }
        }
        let mut files = std::collections::HashSet::new();
        for (role, n) in &m.networks {
            for (f, _) in n.files() {
                if crate::names::valid_id(f, "file").is_err() || f == MANIFEST_FILE {
                    return Err(Error::bad_file(
                        path,
                        format!("network {role}: file '{f}' must be a plain file name"),
                    ));
                }
                if !files.insert(f.to_string()) {
                    return Err(Error::bad_file(
                        path,
                        format!("network {role}: file '{f}' is listed twice"),
                    ));
                }
            }
        }
        Ok(m)
    }

    /// The spec of network `role`, or an error naming the roles present.
    pub fn network(&self, role: &str) -> Result<&NetworkSpec> {
        self.networks.get(role).ok_or_else(|| {
            Error::bad_file(
                MANIFEST_FILE,
                format!(
                    "model '{}' has no '{role}' network (it has: {})",
                    self.name,
                    self.networks.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

impl Model {
    /// Load a model directory: parse the manifest and verify every network file's
    /// SHA-256. Nothing is run yet (ONNX Runtime is loaded by [`Model::network`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.is_file() {
            return Err(Error::bad_file(
                dir,
                format!(
                    "not a model directory (no {MANIFEST_FILE}); models are made by training/ \
                     (see docs/TRAINING.md) and the default one is models/default"
                ),
            ));
        }
        let text = std::fs::read_to_string(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let manifest = Manifest::parse(&text, &mpath.display().to_string())?;
        for (file, sum) in manifest.networks.values().flat_map(NetworkSpec::files) {
            let f = dir.join(file);
            if !f.is_file() {
                return Err(Error::bad_file(f, "listed in manifest.json but missing"));
            }
            let got = sha256_file(&f)?;
            if !got.eq_ignore_ascii_case(sum) {
                return Err(Error::bad_file(
                    f,
                    format!(
                        "checksum mismatch: manifest.json says sha256 {sum}, the file has {got} \
                         (the model directory was modified or is incomplete)"
                    ),
                ));
            }
        }
        Ok(Model {
            dir,
            manifest,
            manifest_json: text,
        })
    }

    /// Open an ONNX Runtime session for network `role` and check that the ONNX graph's
    /// inputs and outputs agree with the manifest.
    pub fn network(&self, role: &str, opts: &RunOptions) -> Result<Network> {
        crate::limits::threads_arg("threads", opts.threads)?;
        let spec = self.manifest.network(role)?.clone();
        let file = self.dir.join(&spec.file);
        let fname = file.display().to_string();
        let env = runtime::environment()?;
        let sess_err = |e: ort::Error| Error::bad_file(&fname, format!("ONNX Runtime: {e}"));
        let mut b = Session::builder(env).map_err(sess_err)?;
        b = b
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| Error::Inference(e.to_string()))?;
        if opts.threads > 0 {
            b = b
                .with_intra_threads(opts.threads)
                .map_err(|e| Error::Inference(e.to_string()))?;
        }
        b = register_device(b, opts.device)?;
        let session = b.commit_from_file(&file).map_err(sess_err)?;
        let net = Network {
            role: role.to_string(),
            file: file.clone(),
            spec,
            session,
        };
        net.check_contract(&self.manifest)?;
        Ok(net)
    }
}

#[cfg(feature = "cuda")]
fn register_device(
    b: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder> {
    match device {
        Device::Cpu => Ok(b),
        Device::Cuda(id) => b
            .with_execution_providers([ort::ep::CUDA::default()
                .with_device_id(id)
                // Full fp32 (no TF32 tensor-core rounding): a sample embedded on a GPU
                // must be comparable with one embedded on a CPU in the same collection.
                .with_tf32(false)
                .build()
                .error_on_failure()])
            .map_err(|e| {
                Error::Device(format!(
                    "cannot use cuda:{id}: {e}; check the GPU (nvidia-smi), that ONNX Runtime is \
                     the onnxruntime-gpu build (`bash scripts/setup-ort.sh --gpu`) and that the \
                     CUDA 13 / cuDNN 9 libraries are on LD_LIBRARY_PATH"
                ))
            }),
    }
}

#[cfg(not(feature = "cuda"))]
fn register_device(
    b: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder> {
    match device {
        Device::Cpu => Ok(b),
        Device::Cuda(_) => Err(Error::Device(
            "this vortexdb was built without CUDA support; rebuild with \
             `cargo build --release --features cuda` and provision onnxruntime-gpu \
             (`bash scripts/setup-ort.sh --gpu`)"
                .into(),
        )),
    }
}

/// An ONNX Runtime session of one network, checked against the manifest.
pub struct Network {
    role: String,
    file: PathBuf,
    spec: NetworkSpec,
    session: Session,
}

fn tensor_shape(t: &ValueType) -> Option<Vec<i64>> {
    t.tensor_shape().map(|s| s.to_vec())
}

impl Network {
    /// The network's role in the manifest (`image_3d`, ...).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Expected fixed sizes of the named axes of this network's inputs and outputs.
    fn axis_size(axis: &str, m: &Manifest, role: &str) -> Option<i64> {
        let p = if role == "image_2d" {
            m.patch_2d.as_ref().unwrap_or(&m.patch)
        } else {
            &m.patch
        };
        let image = role.starts_with("image");
        match axis {
            "C" if image => Some(p.channels as i64),
            "H" if image => Some(p.size_px[0] as i64),
            "W" if image => Some(p.size_px[1] as i64),
            "E" => Some(m.embedding_dim as i64),
            "G" if role == "genes" => m.encoder_genes.as_ref().map(|g| g.names.len() as i64),
            "G" if role == "predictor" => Some(m.predicted_genes.len() as i64),
            _ => None,
        }
    }

    fn check_contract(&self, m: &Manifest) -> Result<()> {
        let f = self.file.display().to_string();
        let mismatch = |msg: String| {
            Error::bad_file(
                &f,
                format!("the ONNX graph disagrees with manifest.json: {msg}"),
            )
        };
        let graph_in: Vec<&str> = self.session.inputs().iter().map(|o| o.name()).collect();
        let graph_out: Vec<&str> = self.session.outputs().iter().map(|o| o.name()).collect();
        if self.spec.inputs.len() != graph_in.len()
            || self
                .spec
                .inputs
                .keys()
                .any(|k| !graph_in.contains(&k.as_str()))
        {
            return Err(mismatch(format!(
                "manifest inputs [{}], graph inputs [{}]",
                self.spec
                    .inputs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                graph_in.join(", ")
            )));
        }
        for k in self.spec.outputs.keys() {
            if !graph_out.contains(&k.as_str()) {
                return Err(mismatch(format!(
                    "manifest output '{k}' is not among the graph outputs [{}]",
                    graph_out.join(", ")
                )));
            }
        }
        let outlets = self
            .session
            .inputs()
            .iter()
            .map(|o| (o.name(), o.dtype()))
            .chain(self.session.outputs().iter().map(|o| (o.name(), o.dtype())));
        for (name, dtype) in outlets {
            let Some(axes) = self
                .spec
                .inputs
                .get(name)
                .or_else(|| self.spec.outputs.get(name))
            else {
                continue;
            };
            let axes: Vec<&str> = axes.split(',').map(str::trim).collect();
            let Some(shape) = tensor_shape(dtype) else {
                return Err(mismatch(format!("'{name}' is not a tensor")));
            };
            if shape.len() != axes.len() {
                return Err(mismatch(format!(
                    "'{name}' has {} axes in the graph, {} ({}) in the manifest",
                    shape.len(),
                    axes.len(),
                    axes.join(",")
                )));
            }
            for (axis, &dim) in axes.iter().zip(&shape) {
                if dim < 0 {
                    continue;
                }
                if let Some(want) = Self::axis_size(axis, m, &self.role)
                    && want != dim
                {
                    return Err(mismatch(format!(
                        "'{name}' axis {axis} is {dim} in the graph, {want} in the manifest"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Run the network on one f32 input (its only input) and return every output
    /// named in the manifest, in manifest order.
    pub fn run(&mut self, input: ArrayViewD<'_, f32>) -> Result<Vec<(String, ArrayD<f32>)>> {
        let name = self
            .spec
            .inputs
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| Error::Inference(format!("{} has no inputs", self.role)))?;
        let shape = input.shape().to_vec();
        let owned;
        let view = if input.is_standard_layout() {
            input
        } else {
            owned = input.as_standard_layout().into_owned();
            owned.view()
        };
        let tensor = TensorRef::from_array_view(view).map_err(|e| {
            Error::Inference(format!("{}: input of shape {shape:?}: {e}", self.role))
        })?;
        let outputs = self
            .session
            .run(ort::inputs![name.as_str() => tensor])
            .map_err(|e| {
                let msg = format!(
                    "{} ({}) on input {shape:?}: {e}",
                    self.role,
                    self.file.display()
                );
                // An input the graph does not accept (wrong width, rank or type) is the
                // caller's to fix, not an internal failure.
                if e.code() == ort::error::ErrorCode::InvalidArgument {
                    Error::bad_input(
                        self.role.clone(),
                        format!("the input does not fit the network: {msg}"),
                    )
                } else {
                    Error::Inference(msg)
                }
            })?;
        let mut out = Vec::with_capacity(self.spec.outputs.len());
        for k in self.spec.outputs.keys() {
            let v = outputs
                .get(k.as_str())
                .ok_or_else(|| Error::Inference(format!("{}: no output '{k}'", self.role)))?;
            let a = v
                .try_extract_array::<f32>()
                .map_err(|e| Error::Inference(format!("{}: output '{k}': {e}", self.role)))?;
            out.push((k.clone(), a.to_owned()));
        }
        Ok(out)
    }

    /// Run and return the output named `embedding` as a (batch, E) matrix.
    pub fn embed(&mut self, input: ArrayViewD<'_, f32>) -> Result<Array2<f32>> {
        self.output(input, "embedding")
    }

    /// Run and return one named 2D output.
    pub fn output(&mut self, input: ArrayViewD<'_, f32>, name: &str) -> Result<Array2<f32>> {
        let role = self.role.clone();
        let outs = self.run(input)?;
        let (_, a) = outs.into_iter().find(|(k, _)| k == name).ok_or_else(|| {
            Error::Inference(format!("{role}: manifest lists no output '{name}'"))
        })?;
        a.into_dimensionality::<Ix2>()
            .map_err(|e| Error::Inference(format!("{role}: output '{name}' is not 2D: {e}")))
    }
}
