//! Spots handed over in memory (an AnnData object's arrays, through the Python
//! package): validated as a file's are, rows canonicalised.

use std::path::Path;

use super::{SpotFormat, SpotTable, check_coordinates, check_count, check_unique};
use crate::error::{Error, Result};
use crate::expression::CountMatrix;

/// Positions of spots handed over in memory (see [`SpotTable::from_arrays`]).
#[derive(Debug, Clone, Default)]
pub struct SpotPositions {
    /// Spot centres (x, y) in pixels of the sample's image (full resolution).
    pub pixel: Vec<[f64; 2]>,
    /// Array (grid) coordinates (x = column, y = row), when known.
    pub array: Option<Vec<[f64; 2]>>,
    /// Section index (z) of each spot, when known.
    pub z: Option<Vec<f64>>,
    /// Spot diameter in image pixels, when known.
    pub spot_diameter_px: Option<f64>,
}

impl SpotTable {
    /// A table from arrays in memory, validated as a file would be (unique spot and
    /// gene ids, one position per spot, finite coordinates, non-negative integer
    /// counts); `name` names the input in errors. `counts` may come with unsorted or
    /// repeated columns in a row (as a SciPy CSR can): rows are canonicalised.
    pub fn from_arrays(
        name: &str,
        ids: Vec<String>,
        positions: SpotPositions,
        counts: CountMatrix,
    ) -> Result<SpotTable> {
        let input = |e: Error| match e {
            Error::BadFile { message, .. } => Error::bad_input(name, message),
            other => other,
        };
        let bad_in = |m: String| Error::bad_input(name, m);
        let n = ids.len();
        if n == 0 {
            return Err(bad_in("no spots to ingest".into()));
        }
        let path = Path::new(name);
        check_unique(path, &ids, "spot").map_err(input)?;
        check_unique(path, &counts.genes, "gene").map_err(input)?;
        let rows = counts.indptr.len().saturating_sub(1);
        let lens = [
            ("count rows", rows),
            ("pixel positions", positions.pixel.len()),
            (
                "array positions",
                positions.array.as_ref().map_or(n, Vec::len),
            ),
            ("z values", positions.z.as_ref().map_or(n, Vec::len)),
        ];
        for (what, len) in lens {
            if len != n {
                return Err(bad_in(format!("{n} spot ids but {len} {what}")));
            }
        }
        let nnz = counts.data.len();
        if counts.indptr[0] != 0
            || counts.indptr[rows] != nnz
            || counts.indices.len() != nnz
            || counts.indptr.windows(2).any(|w| w[1] < w[0])
        {
            return Err(bad_in(format!(
                "the count matrix is not a valid CSR matrix of {nnz} stored values"
            )));
        }
        let genes = counts.genes.len();
        let mut canonical = CountMatrix::new(counts.genes.clone());
        for (i, spot) in ids.iter().enumerate() {
            let mut row = Vec::with_capacity(counts.indptr[i + 1] - counts.indptr[i]);
            for k in counts.indptr[i]..counts.indptr[i + 1] {
                let j = counts.indices[k] as usize;
                let gene = counts.genes.get(j).ok_or_else(|| {
                    bad_in(format!(
                        "spot '{spot}': gene column {j} is outside the {genes} genes"
                    ))
                })?;
                let v = check_count(path, counts.data[k] as f64, spot, gene).map_err(input)?;
                row.push((j as u32, v));
            }
            canonical.push_row(row);
        }
        let t = SpotTable {
            format: SpotFormat::Arrays,
            files: Vec::new(),
            ids,
            pixel: positions.pixel,
            array: positions.array,
            z: positions.z,
            spot_diameter_px: positions.spot_diameter_px,
            dropped_outside_tissue: 0,
            counts: canonical,
        };
        if let Some(d) = t.spot_diameter_px
            && !(d.is_finite() && d > 0.0)
        {
            return Err(bad_in(format!("spot diameter {d} px must be positive")));
        }
        check_coordinates(path, &t).map_err(input)?;
        Ok(t)
    }
}
