//! Conversions at the Python boundary: library errors to the exception classes of
//! `vortexdb.errors` (with their structured fields as attributes), serialisable
//! results to Python objects, NumPy arrays to borrowed slices and owned vectors to
//! NumPy arrays without copies.

use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use vortexdb::{Dtype, Error};

/// The `vortexdb.errors` class an error is raised as.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::InvalidArgument { .. } => "InvalidArgument",
        Error::BadFile { .. } => "BadFile",
        Error::BadInput { .. } => "BadInput",
        Error::UnknownSample { .. } => "UnknownSample",
        Error::UnknownGenes { .. } => "UnknownGenes",
        Error::DimensionMismatch { .. } => "DimensionMismatch",
        Error::NothingSelected { .. } => "NothingSelected",
        Error::OutputExists { .. } => "OutputExists",
        Error::RegistrationFailed { .. } => "RegistrationFailed",
        Error::Interrupted { .. } => "Interrupted",
        Error::UnknownModel { .. } => "UnknownModel",
        Error::NoModel { .. } => "NoModel",
        Error::AmbiguousModel { .. } => "AmbiguousModel",
        Error::UnknownCollection { .. } => "UnknownCollection",
        Error::NotAStore { .. } => "NotAStore",
        Error::Locked { .. } => "StoreLocked",
        Error::Corrupted { .. } => "Corrupted",
        Error::Version { .. } => "VersionError",
        Error::ReadOnly(_) => "ReadOnly",
        Error::Io { .. } => "StoreIOError",
        Error::Database { .. } => "DatabaseError",
        Error::MissingRuntime(_) => "MissingRuntime",
        Error::Device(_) => "DeviceError",
        Error::Inference(_) => "InferenceError",
        Error::Index(_) => "GraphError",
        _ => "Error",
    }
}

/// The structured fields of an error, set as attributes of the exception.
fn fields(e: &Error) -> serde_json::Value {
    use serde_json::json;
    match e {
        Error::InvalidArgument { name, .. } => json!({"name": name}),
        Error::BadFile { path, .. } => json!({"path": path}),
        Error::BadInput { what, .. } => json!({"what": what}),
        Error::UnknownSample {
            name,
            sample,
            known,
            ..
        } => json!({"name": name, "sample": sample, "known": known}),
        Error::UnknownGenes { name, genes, .. } => json!({
            "name": name,
            "genes": genes.iter().map(|g| &g.gene).collect::<Vec<_>>(),
            "suggestions": genes.iter().map(|g| (&g.gene, &g.suggestions)).collect::<std::collections::BTreeMap<_, _>>(),
        }),
        Error::DimensionMismatch {
            path,
            found,
            expected,
            ..
        } => json!({"path": path, "found": found, "expected": expected}),
        Error::NothingSelected { stage, .. } => json!({"stage": stage}),
        Error::OutputExists { path, .. } => json!({"path": path}),
        Error::RegistrationFailed {
            moving,
            fixed,
            score,
            overlap,
            ..
        } => {
            json!({"moving": moving, "fixed": fixed, "score": score, "overlap": overlap})
        }
        Error::Interrupted { done, total, .. } => json!({"done": done, "total": total}),
        Error::UnknownCollection { known, .. } => json!({"known": known}),
        Error::Locked { pid, .. } => json!({"pid": pid}),
        Error::Version {
            found,
            oldest,
            supported,
            ..
        } => json!({"found": found, "oldest": oldest, "supported": supported}),
        Error::Io { path, .. } => json!({"path": path}),
        _ => json!({}),
    }
}

/// A library error as the matching `vortexdb.errors` exception.
pub fn err(e: Error) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let module = py.import("vortexdb.errors")?;
            let cls = module.getattr(class_name(&e))?;
            let inst = cls.call1((e.to_string(),))?;
            inst.setattr("layer", format!("{:?}", e.layer()).to_lowercase())?;
            if let serde_json::Value::Object(m) = fields(&e) {
                for (k, v) in m {
                    inst.setattr(k.as_str(), to_py(py, &v)?)?;
                }
            }
            Ok(PyErr::from_value(inst))
        };
        build().unwrap_or_else(|b| b)
    })
}

/// `Result<T, vortexdb::Error>` into a `PyResult`.
pub trait OrRaise<T> {
    /// Raise the error as its Python class.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for vortexdb::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(err)
    }
}

/// A JSON value as Python objects (dicts, lists, str, int, float, bool, None).
pub fn to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any().unbind(),
            (_, Some(u), _) => u.into_pyobject(py)?.into_any().unbind(),
            (_, _, Some(f)) => f.into_pyobject(py)?.into_any().unbind(),
            _ => py.None(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(a) => {
            let items: Vec<Py<PyAny>> = a.iter().map(|x| to_py(py, x)).collect::<PyResult<_>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// Any serialisable result as Python objects (what the CLI prints with `--json`).
pub fn serialised<T: serde::Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let j = serde_json::to_value(v)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    to_py(py, &j)
}

/// Vector `v` as a NumPy array of `shape`, without a copy (NumPy owns the buffer).
pub fn array<T: numpy::Element>(py: Python<'_>, v: Vec<T>, shape: &[usize]) -> PyResult<Py<PyAny>> {
    let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), v)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any().unbind())
}

/// A copy of the bytes of a C-contiguous NumPy array of uint8, uint16 or float32 with
/// its shape and element type. Copied while the GIL is held, because the calls that use
/// them release it: Python code running meanwhile may write to the array (a borrowed
/// buffer would then be read while it changes).
pub fn array_bytes(
    a: &Bound<'_, PyUntypedArray>,
    name: &str,
) -> PyResult<(Vec<u8>, Vec<usize>, Dtype)> {
    let py = a.py();
    let dt = a.dtype();
    let dtype = if dt.is_equiv_to(&numpy::dtype::<u8>(py)) {
        Dtype::U8
    } else if dt.is_equiv_to(&numpy::dtype::<u16>(py)) {
        Dtype::U16
    } else if dt.is_equiv_to(&numpy::dtype::<f32>(py)) {
        Dtype::F32
    } else {
        return Err(err(Error::bad_input(
            name,
            format!("dtype {dt} is not supported; arrays must be uint8, uint16 or float32"),
        )));
    };
    if !a.is_c_contiguous() {
        return Err(not_contiguous(name));
    }
    let shape = a.shape().to_vec();
    let len = shape.iter().product::<usize>() * dt.itemsize();
    // SAFETY: a C-contiguous array of `len` bytes starts at its data pointer and lives
    // as long as `a`; the GIL is held, so no Python code writes while it is copied.
    let bytes = unsafe {
        let data = (*a.as_array_ptr()).fields.data as *const u8;
        if len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, len).to_vec()
        }
    };
    Ok((bytes, shape, dtype))
}

fn not_contiguous(name: &str) -> PyErr {
    err(Error::bad_input(
        name,
        "the array is not C-contiguous; pass numpy.ascontiguousarray(a)",
    ))
}

/// A copy of the elements of a C-contiguous 2D float32 array, made while the GIL is
/// held (the calls using it release the GIL, and Python code may then write to the
/// array).
pub fn contiguous(a: &PyReadonlyArray2<'_, f32>, name: &str) -> PyResult<Vec<f32>> {
    a.as_slice()
        .map(<[f32]>::to_vec)
        .map_err(|_| not_contiguous(name))
}
