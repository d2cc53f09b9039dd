//! Registered models: a model's manifest and the SHA-256 of each network file,
//! recorded in `models` when it is added, and its files copied into `models/<name>/`;
//! loading one checks the copy against those checksums.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::tables::MODELS;
use crate::codec;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::model::{Model, sha256_file};
use crate::names::valid_id;

/// Directory of registered model copies inside a store.
pub const MODELS_DIR: &str = "models";

/// A model registered in a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model name (from its manifest).
    pub name: String,
    /// The manifest text.
    pub manifest_json: String,
    /// (file, sha256) of every network file and external data file.
    pub files: Vec<(String, String)>,
}

impl Store {
    /// [`Store::add_model`], or, when `dir` is the bare name `default` and no such
    /// directory exists, register the model built into vortexdb.
    pub fn add_model_or_builtin(&self, dir: &Path) -> Result<ModelRecord> {
        let (dir, tmp) = crate::model::embedded::resolve(dir)?;
        let rec = self.add_model(&dir);
        if let Some(t) = tmp {
            let _ = std::fs::remove_dir_all(t);
        }
        rec
    }

    /// Register a model: verify it (checksums, and every network loads in ONNX Runtime
    /// and agrees with the manifest), copy its files into `models/<name>/` and record its
    /// manifest and checksums. Adding the same model again is a no-op; a different
    /// model under an existing name is refused (embeddings of two models never mix).
    pub fn add_model(&self, dir: &Path) -> Result<ModelRecord> {
        self.ensure_writable()?;
        let model = Model::load(dir)?;
        let name = model.manifest.name.clone();
        valid_id(&name, "manifest.json name")?;
        let files: Vec<(String, String)> = model
            .manifest
            .networks
            .values()
            .flat_map(|n| n.files())
            .map(|(f, sum)| (f.to_string(), sum.to_ascii_lowercase()))
            .collect();
        let rec = ModelRecord {
            name: name.clone(),
            manifest_json: model.manifest_json.clone(),
            files,
        };
        let dest = self.path().join(MODELS_DIR).join(&name);
        if let Some(old) = self.model_record(&name)? {
            if old.files == rec.files {
                if self.model_files_intact(&old)? {
                    return Ok(old);
                }
                // The same model, but the store's copy is damaged or gone: restore it.
                self.copy_model_files(dir, &rec, &dest)?;
                return Ok(old);
            }
            return Err(Error::bad_file(
                dir,
                format!(
                    "this store already has a different model named '{name}' (other checksums); \
                     rename the new model in its manifest.json"
                ),
            ));
        }
        self.copy_model_files(dir, &rec, &dest)?;
        self.put(MODELS, &name, &codec::encode(&rec))?;
        Ok(rec)
    }

    /// Copy a model's files into `dest` (`models/<name>`, the name validated) through a
    /// temporary directory, where every network must load in ONNX Runtime and agree with
    /// the manifest before the copy replaces `dest` (so a graph that needs a file the
    /// manifest does not list is refused); only directories under `models/` are ever
    /// removed.
    fn copy_model_files(&self, dir: &Path, rec: &ModelRecord, dest: &Path) -> Result<()> {
        valid_id(&rec.name, "manifest.json name")?;
        let root = self.path().join(MODELS_DIR);
        debug_assert_eq!(dest.parent(), Some(root.as_path()));
        let tmp = root.join(format!(".{}.tmp", rec.name));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut names: Vec<&str> = rec.files.iter().map(|f| f.0.as_str()).collect();
        names.push(crate::model::MANIFEST_FILE);
        for f in names {
            if let Err(e) = std::fs::copy(dir.join(f), tmp.join(f)) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::io(dir.join(f), e));
            }
        }
        if let Err(e) = check_networks(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(match e {
                Error::BadFile { path, message } => Error::bad_file(
                    path.file_name().map_or(dir.to_path_buf(), |f| dir.join(f)),
                    format!(
                        "{message} (in a copy of the files manifest.json lists; an ONNX graph \
                         with external data must name its data files under the network's `data`)"
                    ),
                ),
                e => e,
            });
        }
        if dest.exists() {
            std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        }
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
        crate::index::sync_dir(&root)
    }

    /// True when every file of a registered model is present in the store's copy with
    /// the checksum recorded when it was added.
    pub fn model_files_intact(&self, rec: &ModelRecord) -> Result<bool> {
        let dir = self.model_dir(&rec.name);
        for (f, sum) in &rec.files {
            let p = dir.join(f);
            if !p.is_file() || sha256_file(&p)? != *sum {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The record of a registered model.
    pub fn model_record(&self, name: &str) -> Result<Option<ModelRecord>> {
        self.get_raw(MODELS, name, "model record")
    }

    /// Every registered model.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        self.all_raw(MODELS, "model record")
    }

    /// Load a registered model from the store's copy, checking its files against the
    /// checksums recorded when it was added. With `name` None the store must hold
    /// exactly one model.
    pub fn load_model(&self, name: Option<&str>) -> Result<Model> {
        let rec = match name {
            Some(n) => self.model_record(n)?.ok_or_else(|| {
                let known: Vec<String> = self
                    .models()
                    .map(|m| m.into_iter().map(|r| r.name).collect())
                    .unwrap_or_default();
                Error::UnknownModel {
                    store: self.path().to_path_buf(),
                    name: n.to_string(),
                    known,
                }
            })?,
            None => {
                let mut all = self.models()?;
                match all.len() {
                    1 => all.remove(0),
                    0 => {
                        return Err(Error::NoModel {
                            store: self.path().to_path_buf(),
                        });
                    }
                    _ => {
                        return Err(Error::AmbiguousModel {
                            store: self.path().to_path_buf(),
                            known: all.into_iter().map(|m| m.name).collect(),
                        });
                    }
                }
            }
        };
        let dir = self.model_dir(&rec.name);
        for (f, sum) in &rec.files {
            let p = dir.join(f);
            if !p.is_file() || sha256_file(&p)? != *sum {
                return Err(Error::Corrupted {
                    path: p,
                    message: format!(
                        "model '{}' file {f} is missing or differs from the checksum recorded when it was added",
                        rec.name
                    ),
                });
            }
        }
        Model::load(&dir)
    }

    /// Directory of a registered model's copy.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.path().join(MODELS_DIR).join(name)
    }
}

/// Every network of the model in `dir` loads in ONNX Runtime and agrees with the manifest.
fn check_networks(dir: &Path) -> Result<()> {
    let model = Model::load(dir)?;
    let check = crate::model::RunOptions {
        threads: 1,
        ..Default::default()
    };
    for role in model.manifest.networks.keys() {
        model.network(role, &check)?;
    }
    Ok(())
}
