//! vortexdb: an embedded morphology-transcriptome vector database for the VORTEX
//! method (3D spatial transcriptomics predicted from 3D tissue images).
//!
//! A [`Store`] is a directory: `vortex.redb` holds everything (collections, vectors as
//! raw f32 with a CRC, patch provenance, tombstones, import progress) and `index/`
//! holds HNSW snapshots derived from it. The modules:
//!
//! * [`store`]: the source of truth, transactions, locking, the HNSW life cycle, search;
//! * [`index`]: the HNSW graph (hand-written in hnswlib's layout), its snapshots and exact search;
//! * [`vecio`]: NPY / Parquet vector files;
//! * [`codec`]: byte encodings (every record with a CRC-32) and the schema version;
//! * [`limits`]: bounds on sizes read from files and on numeric arguments;
//! * [`names`]: sample ids and model names validated, gene names mapped to file names;
//! * [`spots`]: spot readers (her2st, Visium MTX / `.h5`, Parquet);
//! * [`expression`]: spot QC, normalisation, highly variable genes, smoothing, panels;
//! * [`model`]: model directories, the ONNX Runtime sessions, the built-in default model;
//! * [`volume`]: volume readers, resampling, tissue mask and the patch grid;
//! * [`ingest`]: streaming, resumable volume ingest and spot ingest;
//! * [`query`]: molecular queries, profile and patch retrieval, triage, 3D heatmaps;
//! * [`predict`]: predicted expression per patch (predictor head or k nearest spots);
//! * [`domains`]: k-means spatial domains, label volumes, ARI against a segmentation;
//! * [`metrics`]: PCC, Spearman, SSIM, ARI, Moran's I, Geary's C and the eval report;
//! * [`phantom`]: a deterministic synthetic tissue phantom (volume, H&E planes, spots);
//!
//! ```
//! use vortexdb::{CollectionSpec, Metric, NewVector, SearchOptions, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path().join("db")).unwrap();
//! store.create_collection(&CollectionSpec::raw("demo", 3, Metric::Cosine)).unwrap();
//! let rows = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.7, 0.7, 0.0]];
//! let batch: Vec<NewVector> = rows.iter().map(|v| NewVector { vector: v, record: None }).collect();
//! store.insert("demo", &batch, None).unwrap();
//! let hits = store.search("demo", &[vec![1.0, 0.1, 0.0]], &SearchOptions { k: 2, ..Default::default() }).unwrap();
//! assert_eq!(hits[0][0].id, 0);
//! assert_eq!(hits[0][1].id, 2);
//! ```

pub mod codec;
pub mod domains;
pub mod error;
pub mod expression;
pub mod index;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod names;
pub mod phantom;
pub mod predict;
pub mod query;
pub mod spots;
pub mod store;
pub mod vecio;
pub mod volume;

pub use error::{Error, Result};
pub use index::{HnswParams, Metric};
pub use phantom::{PhantomParams, PhantomSummary};
pub use store::{
    CollectionInfo, CollectionSpec, Filter, Hit, ImportMark, ImportProgress, NewVector,
    PatchRecord, Region, SearchOptions, Store, StoreInfo,
};
