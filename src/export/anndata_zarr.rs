//! AnnData tables in Zarr v3 (anndata's on-disk encoding 0.1.0, as `anndata.read_zarr`
//! and SpatialData read it): `X` dense float32, `obs` / `var` dataframes (string index,
//! integer, float and categorical columns), `obsm` arrays, `uns` string entries and
//! the empty `layers`, `obsp`, `varm`, `varp` dicts.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use zarrs::array::{ArrayBuilder, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use super::ome_zarr::zerr;
use crate::error::Result;

/// One column of an AnnData dataframe.
pub(super) enum Column {
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// A categorical: the categories and each row's code.
    Categorical(Vec<String>, Vec<i16>),
}

/// An AnnData table to write.
pub(super) struct Table {
    /// Row names (`obs_names`).
    pub obs_names: Vec<String>,
    /// `obs` columns in order.
    pub obs: Vec<(String, Column)>,
    /// Column names (`var_names`).
    pub var_names: Vec<String>,
    /// `X`, rows x columns, row-major.
    pub x: Vec<f32>,
    /// `obsm` entries: name, values (rows x width, row-major) and width.
    pub obsm: Vec<(String, Vec<f64>, usize)>,
    /// Extra attributes of the table's group (SpatialData's region annotation).
    pub attrs: Value,
    /// `uns` dicts of string entries.
    pub uns: Vec<(String, Vec<(String, String)>)>,
}

/// Writes the nodes of one Zarr v3 hierarchy.
pub(super) struct Writer<'a> {
    /// The store's directory, for messages.
    pub path: &'a Path,
    /// The store.
    pub store: Arc<FilesystemStore>,
}

fn enc(t: &str, v: &str) -> Value {
    json!({"encoding-type": t, "encoding-version": v})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

impl Writer<'_> {
    /// A group at `at` with `attrs`.
    pub fn group(&self, at: &str, attrs: Value) -> Result<()> {
        GroupBuilder::new()
            .attributes(attrs.as_object().cloned().unwrap_or_default())
            .build(self.store.clone(), at)
            .map_err(|e| zerr(self.path, e))?
            .store_metadata()
            .map_err(|e| zerr(self.path, e))
    }

    fn array<T>(
        &self,
        at: &str,
        shape: Vec<u64>,
        dtype: zarrs::array::DataType,
        fill: impl Into<zarrs::array::builder::ArrayBuilderFillValue>,
        data: &[T],
        attrs: Value,
    ) -> Result<()>
    where
        T: zarrs::array::Element,
    {
        // Row chunks of at most ~16 MiB of 4-byte values.
        let chunk: Vec<u64> = match shape.as_slice() {
            [] => vec![],
            [n] => vec![(*n).clamp(1, 1 << 20)],
            [n, w, ..] => vec![(*n).clamp(1, ((4 << 20) / (*w).max(1)).max(1)), (*w).max(1)],
        };
        let gzip = zarrs::array::codec::GzipCodec::new(5).map_err(|e| zerr(self.path, e))?;
        let a = ArrayBuilder::new(shape, chunk, dtype, fill)
            .bytes_to_bytes_codecs(vec![Arc::new(gzip)])
            .attributes(attrs.as_object().cloned().unwrap_or_default())
            .build(self.store.clone(), at)
            .map_err(|e| zerr(self.path, e))?;
        a.store_metadata().map_err(|e| zerr(self.path, e))?;
        a.store_array_subset(&a.subset_all(), data)
            .map_err(|e| zerr(self.path, e))
    }

    fn strings(&self, at: &str, v: &[String]) -> Result<()> {
        let a = enc("string-array", "0.2.0");
        self.array(at, vec![v.len() as u64], data_type::string(), "", v, a)
    }

    fn column(&self, at: &str, c: &Column) -> Result<()> {
        let a = || enc("array", "0.2.0");
        match c {
            Column::I64(v) => {
                self.array(at, vec![v.len() as u64], data_type::int64(), 0i64, v, a())
            }
            Column::F64(v) => {
                self.array(at, vec![v.len() as u64], data_type::float64(), 0f64, v, a())
            }
            Column::Bool(v) => self.array(
                at,
                vec![v.len() as u64],
                data_type::bool(),
                zarrs::metadata::FillValueMetadata::from(false),
                v,
                a(),
            ),
            Column::Categorical(cats, codes) => {
                self.group(
                    at,
                    merge(enc("categorical", "0.2.0"), json!({"ordered": false})),
                )?;
                self.strings(&format!("{at}/categories"), cats)?;
                let n = vec![codes.len() as u64];
                self.array(
                    &format!("{at}/codes"),
                    n,
                    data_type::int16(),
                    0i16,
                    codes,
                    a(),
                )
            }
        }
    }

    fn dataframe(&self, at: &str, index: &[String], cols: &[(String, Column)]) -> Result<()> {
        let order: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        self.group(
            at,
            merge(
                enc("dataframe", "0.2.0"),
                json!({"_index": "_index", "column-order": order}),
            ),
        )?;
        self.strings(&format!("{at}/_index"), index)?;
        for (name, c) in cols {
            self.column(&format!("{at}/{name}"), c)?;
        }
        Ok(())
    }

    /// Write `t` as the AnnData group `at`.
    pub fn table(&self, at: &str, t: &Table) -> Result<()> {
        let dict = || enc("dict", "0.1.0");
        self.group(at, merge(enc("anndata", "0.1.0"), t.attrs.clone()))?;
        let (n, g) = (t.obs_names.len() as u64, t.var_names.len() as u64);
        let a = enc("array", "0.2.0");
        self.array(
            &format!("{at}/X"),
            vec![n, g],
            data_type::float32(),
            0f32,
            &t.x,
            a,
        )?;
        self.dataframe(&format!("{at}/obs"), &t.obs_names, &t.obs)?;
        self.dataframe(&format!("{at}/var"), &t.var_names, &[])?;
        self.group(&format!("{at}/obsm"), dict())?;
        for (name, v, w) in &t.obsm {
            let shape = vec![n, *w as u64];
            let a = enc("array", "0.2.0");
            self.array(
                &format!("{at}/obsm/{name}"),
                shape,
                data_type::float64(),
                0f64,
                v,
                a,
            )?;
        }
        for d in ["layers", "obsp", "varm", "varp"] {
            self.group(&format!("{at}/{d}"), dict())?;
        }
        self.group(&format!("{at}/uns"), dict())?;
        for (name, entries) in &t.uns {
            self.group(&format!("{at}/uns/{name}"), dict())?;
            for (k, v) in entries {
                let a = enc("string", "0.2.0");
                let v = [v.clone()];
                self.array(
                    &format!("{at}/uns/{name}/{k}"),
                    vec![],
                    data_type::string(),
                    "",
                    &v,
                    a,
                )?;
            }
        }
        Ok(())
    }
}
