//! The spots of a sample as files: positions and QC (CSV), the gene panel, the
//! normalised and smoothed expression and the embeddings of the kept spots (NPY), and
//! optionally the image embeddings of a volume or section sample at the spots: the
//! frozen features of a HEST-style linear probe read from the store
//! (`python -m vortex_train probe --spots DIR...`).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::engine::Store;
use crate::error::{Error, Result};
use crate::vecio::write_f32_npy;

/// What [`write_spots`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SpotsExport {
    /// The sample.
    pub sample: String,
    /// Spots of the sample.
    pub spots: usize,
    /// Spots kept by QC (rows of the NPY files).
    pub kept: usize,
    /// Genes in the panel (columns of the expression NPY files).
    pub panel: usize,
    /// The image sample whose patch embeddings were read at the spots, if any.
    pub image: Option<String>,
    /// Width of `image_embeddings.npy` (0 without an image sample).
    pub image_dim: usize,
    /// The directory written.
    pub out: std::path::PathBuf,
}

impl std::fmt::Display for SpotsExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} spots ({} kept, panel of {} genes) to {}",
            self.spots,
            self.kept,
            self.panel,
            self.out.display()
        )?;
        if let Some(i) = &self.image {
            write!(
                f,
                ", with the {}-d embeddings of '{i}' at the spots",
                self.image_dim
            )?;
        }
        Ok(())
    }
}

/// Write `spots.csv`, `panel.txt`, `expression.npy`, `smoothed.npy` and
/// `embeddings.npy` of the spots of `sample` into `dir`, and `export.json` (this
/// summary). With `image` (a volume or section sample the spots lie in), also
/// `image_embeddings.npy`: per kept spot, the mean stored embedding of the image's
/// patches containing the spot ([`crate::Predictions::embeddings_at_spots`]).
pub fn write_spots(
    dir: &Path,
    store: &Store,
    sample: &str,
    image: Option<&str>,
) -> Result<SpotsExport> {
    let set = store.require_spot_set("sample", sample)?;
    // Checked before anything is written: an unknown or 2D image sample is an error.
    let image_pred = image
        .map(|i| crate::predict::Predictions::load(store, i))
        .transpose()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let spots = store.spots(sample)?;
    let csv_path = dir.join("spots.csv");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&csv_path).map_err(|e| Error::io(&csv_path, e))?,
    );
    let mut text = String::from(
        "spot,pixel_x,pixel_y,z,y,x,n_genes,total_counts,mito_fraction,kept,vector_id\n",
    );
    let (mut expr, mut smooth, mut emb) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept_spots = Vec::new();
    for (s, e) in &spots {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            s.id,
            s.pixel[0],
            s.pixel[1],
            s.position[0],
            s.position[1],
            s.position[2],
            s.qc.n_genes,
            s.qc.total_counts,
            s.qc.mito_fraction,
            s.qc.kept as u8,
            s.vector_id.map(|v| v.to_string()).unwrap_or_default()
        ));
        if let (Some(e), Some(id)) = (e, s.vector_id) {
            expr.push(e.normalized.clone());
            smooth.push(e.smoothed.clone());
            let (v, _) = store
                .get(&set.collection, id)?
                .ok_or_else(|| Error::Corrupted {
                    path: store.path().to_path_buf(),
                    message: format!("spot {} has no vector {id}", s.id),
                })?;
            emb.push(v);
            kept_spots.push(s);
        }
    }
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(&csv_path, e))?;
    f.flush().map_err(|e| Error::io(&csv_path, e))?;
    let panel_path = dir.join("panel.txt");
    std::fs::write(&panel_path, set.panel.join("\n") + "\n")
        .map_err(|e| Error::io(&panel_path, e))?;
    write_f32_npy(&dir.join("expression.npy"), &expr, set.panel.len())?;
    write_f32_npy(&dir.join("smoothed.npy"), &smooth, set.panel.len())?;
    let dim = store.collection(&set.collection)?.dim;
    write_f32_npy(&dir.join("embeddings.npy"), &emb, dim)?;
    let mut image_dim = 0;
    if let Some(p) = &image_pred {
        let (at, d) = p.embeddings_at_spots(store, &kept_spots)?;
        let rows: Vec<Vec<f32>> = at.chunks_exact(d.max(1)).map(<[f32]>::to_vec).collect();
        write_f32_npy(&dir.join("image_embeddings.npy"), &rows, d)?;
        image_dim = d;
    }
    let report = SpotsExport {
        sample: sample.into(),
        spots: spots.len(),
        kept: emb.len(),
        panel: set.panel.len(),
        image: image.map(str::to_string),
        image_dim,
        out: dir.to_path_buf(),
    };
    let meta = dir.join("export.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::io(&meta, e.into()))?;
    std::fs::write(&meta, text + "\n").map_err(|e| Error::io(&meta, e))?;
    Ok(report)
}
