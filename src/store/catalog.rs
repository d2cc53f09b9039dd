//! The store's catalog: registered models (manifest + checksums, files copied into
//! `models/<name>/`) and samples (source, geometry, ingest state).

use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::{Store, db_err, decode_or_corrupt};
use crate::codec;
use crate::error::{Error, Result};
use crate::model::{Model, sha256_file};

/// `models`: model name -> [`ModelRecord`].
pub(crate) const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// `samples`: sample id -> [`SampleRecord`].
pub(crate) const SAMPLES: TableDefinition<&str, &[u8]> = TableDefinition::new("samples");

/// Directory of registered model copies inside a store.
pub const MODELS_DIR: &str = "models";

/// A model registered in a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model name (from its manifest).
    pub name: String,
    /// The manifest text.
    pub manifest_json: String,
    /// (file, sha256) of every network file.
    pub files: Vec<(String, String)>,
}

/// A sample (one volume or section stack) and the state of its ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Sample id.
    pub id: String,
    /// `3d` (a volume) or `2.5d` (serial sections).
    pub kind: String,
    /// Source path as given.
    pub source: String,
    /// Fingerprint of the source and ingest settings; a re-run must match it to resume.
    pub fingerprint: String,
    /// Model whose embeddings were stored.
    pub model: String,
    /// Collection holding the embeddings.
    pub collection: String,
    /// Source shape (z, y, x) in its own voxels.
    pub source_shape: [usize; 3],
    /// Source voxel size (z, y, x) in micrometres.
    pub voxel_um: [f64; 3],
    /// Model-resolution voxel size (z, y, x) in micrometres (patch origins are in these
    /// voxels).
    pub model_voxel_um: [f64; 3],
    /// The patch grid at the model's resolution.
    pub grid: crate::volume::grid::Grid,
    /// Tissue threshold (Otsu, on [0, 1] gray values).
    pub threshold: f32,
    /// Tissue side of the threshold.
    pub polarity: crate::volume::grid::Polarity,
    /// Minimum tissue fraction for a patch to be embedded.
    pub min_tissue: f32,
    /// `ingesting` until the last batch is durable, then `complete`.
    pub status: String,
    /// Patches stored so far.
    pub patches: u64,
}

impl SampleRecord {
    /// What the sample was ingested from (`None` for a kind this build does not know).
    pub fn sample_kind(&self) -> Option<super::SampleKind> {
        super::SampleKind::parse(&self.kind)
    }

    /// How far its ingest got.
    pub fn ingest_status(&self) -> super::IngestStatus {
        super::IngestStatus::parse(&self.status)
    }
}

fn open_read(
    txn: &redb::ReadTransaction,
    t: TableDefinition<'static, &'static str, &'static [u8]>,
    path: &Path,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(t) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err(path, e)),
    }
}

pub(crate) use crate::names::valid_id;

impl Store {
    /// Write one value of a `&str`-keyed table in its own durable transaction.
    pub(super) fn put(
        &self,
        t: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let db = self.writer()?;
        let path = self.db_path();
        let _w = self.write_guard.lock().expect("write lock");
        let mut txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&path, e))?;
        {
            let mut tab = txn.open_table(t).map_err(|e| db_err(&path, e))?;
            tab.insert(key, value).map_err(|e| db_err(&path, e))?;
        }
        txn.commit().map_err(|e| db_err(&path, e))
    }

    pub(super) fn get_raw<T: serde::de::DeserializeOwned>(
        &self,
        t: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        what: &str,
    ) -> Result<Option<T>> {
        let path = self.db_path();
        let txn = self.read()?;
        let Some(tab) = open_read(&txn, t, &path)? else {
            return Ok(None);
        };
        match tab.get(key).map_err(|e| db_err(&path, e))? {
            Some(v) => Ok(Some(decode_or_corrupt(&path, v.value(), what)?)),
            None => Ok(None),
        }
    }

    pub(super) fn all_raw<T: serde::de::DeserializeOwned>(
        &self,
        t: TableDefinition<'static, &'static str, &'static [u8]>,
        what: &str,
    ) -> Result<Vec<T>> {
        let path = self.db_path();
        let txn = self.read()?;
        let Some(tab) = open_read(&txn, t, &path)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for kv in tab.iter().map_err(|e| db_err(&path, e))? {
            let (_, v) = kv.map_err(|e| db_err(&path, e))?;
            out.push(decode_or_corrupt(&path, v.value(), what)?);
        }
        Ok(out)
    }

    /// Register a model: verify it (checksums, and every network loads in ONNX Runtime
    /// and agrees with the manifest), copy its files into `models/<name>/` and record its
    /// manifest and checksums. Adding the same model again is a no-op; a different
    /// model under an existing name is refused (embeddings of two models never mix).
    pub fn add_model(&self, dir: &Path) -> Result<ModelRecord> {
        self.writer()?;
        let model = Model::load(dir)?;
        let name = model.manifest.name.clone();
        valid_id(&name, "manifest.json name")?;
        // Every network must load and agree with the manifest before anything is written.
        let check = crate::model::RunOptions {
            threads: 1,
            ..Default::default()
        };
        for role in model.manifest.networks.keys() {
            model.network(role, &check)?;
        }
        let files: Vec<(String, String)> = model
            .manifest
            .networks
            .values()
            .map(|n| (n.file.clone(), n.sha256.to_ascii_lowercase()))
            .collect();
        let rec = ModelRecord {
            name: name.clone(),
            manifest_json: model.manifest_json.clone(),
            files,
        };
        let dest = self.dir.join(MODELS_DIR).join(&name);
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
    /// temporary directory; only directories under `models/` are ever removed.
    fn copy_model_files(&self, dir: &Path, rec: &ModelRecord, dest: &Path) -> Result<()> {
        valid_id(&rec.name, "manifest.json name")?;
        let root = self.dir.join(MODELS_DIR);
        debug_assert_eq!(dest.parent(), Some(root.as_path()));
        let tmp = root.join(format!(".{}.tmp", rec.name));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut names: Vec<&str> = rec.files.iter().map(|f| f.0.as_str()).collect();
        names.push(crate::model::MANIFEST_FILE);
        for f in names {
            std::fs::copy(dir.join(f), tmp.join(f)).map_err(|e| Error::io(dir.join(f), e))?;
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
                    store: self.dir.clone(),
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
                            store: self.dir.clone(),
                        });
                    }
                    _ => {
                        return Err(Error::AmbiguousModel {
                            store: self.dir.clone(),
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
        self.dir.join(MODELS_DIR).join(name)
    }

    /// Record (create or replace) a sample.
    pub fn put_sample(&self, rec: &SampleRecord) -> Result<()> {
        valid_id(&rec.id, "sample")?;
        self.put(SAMPLES, &rec.id, &codec::encode(rec))
    }

    /// A sample's record.
    pub fn sample(&self, id: &str) -> Result<Option<SampleRecord>> {
        self.get_raw(SAMPLES, id, "sample record")
    }

    /// Every sample.
    pub fn samples(&self) -> Result<Vec<SampleRecord>> {
        self.all_raw(SAMPLES, "sample record")
    }
}

/// Make the catalog tables in a new store.
pub(crate) fn create_tables(txn: &redb::WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(MODELS).map_err(|e| db_err(path, e))?;
    txn.open_table(SAMPLES).map_err(|e| db_err(path, e))?;
    Ok(())
}

impl Store {
    /// Live patches of `collection` whose record names `sample` (a scan; used when
    /// resuming an ingest and by `info`).
    pub fn count_sample_patches(&self, collection: &str, sample: &str) -> Result<u64> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let records = txn
            .open_table(super::tables::RECORDS)
            .map_err(|e| db_err(&path, e))?;
        let tomb = txn
            .open_table(super::tables::TOMBSTONES)
            .map_err(|e| db_err(&path, e))?;
        let mut n = 0u64;
        for kv in records
            .range((info.id, 0)..=(info.id, u64::MAX))
            .map_err(|e| db_err(&path, e))?
        {
            let (k, v) = kv.map_err(|e| db_err(&path, e))?;
            let r: crate::store::PatchRecord =
                super::decode_record_at(&path, k.value(), v.value())?;
            if r.sample == sample && tomb.get(k.value()).map_err(|e| db_err(&path, e))?.is_none() {
                n += 1;
            }
        }
        Ok(n)
    }
}
