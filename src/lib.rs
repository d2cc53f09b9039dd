//! vortexdb: an embedded morphology-transcriptome vector database for the VORTEX
//! method (3D spatial transcriptomics predicted from 3D tissue images).
//!
//! A [`Store`] is a directory: `vortex.redb` is the source of truth (collections, the
//! committed length and blocks of each packed vector file, patch provenance,
//! tombstones, import progress, models, samples, spots, predictions, domains),
//! `vectors/` holds the vectors packed as raw f32 rows with a CRC each (memory-mapped),
//! and `index/` holds HNSW snapshots derived from them.
//!
//! This file is the table of contents: the modules are private and the `pub use`
//! list below is the whole API. Each user operation is one call returning typed values
//! ([`ingest_volume`], [`ingest_spots`], [`query_genes`], [`query_patch`], [`predict`],
//! [`find_domains`], [`evaluate_sample`], [`run_demo`], ...); files are written only
//! by the `write_*` calls. Errors are [`Error`] variants with structured fields. The
//! `vortexdb` binary (feature `cli`) is a thin face over these calls. The modules:
//!
//! * `engine`: the vector engine: the source of truth, transactions, locking,
//!   collections, vectors, tombstones, import marks, the HNSW life cycle, search;
//! * `catalog`: above the engine: models, samples, spots, predictions, domains, the
//!   typed kinds of records and the store summary;
//! * `maintenance`: what must know every table: create/open (the catalog's tables,
//!   the schema-1 migration), a check that writes nothing, the salvaging backup, repair;
//! * `index`: the HNSW graph (hand-written in hnswlib's layout), its snapshots and exact search;
//! * `vecio`: NPY / Parquet vector files;
//! * `codec`: byte encodings (every record with a CRC-32) and the schema version;
//! * `limits`: bounds on sizes read from files and on numeric arguments;
//! * `names`: sample ids and model names validated, gene names mapped to file names;
//! * `spots`: spot readers (her2st, Visium MTX / `.h5`, AnnData `.h5ad`, Parquet);
//! * `expression`: spot QC, normalisation, highly variable genes, smoothing, panels;
//! * `model`: model directories, the ONNX Runtime sessions, the built-in default model;
//! * `volume`: volume readers (NPY, TIFF, slice folders, OME-Zarr), pyramidal
//!   whole-slide TIFF (OME-TIFF, SVS), resampling, tissue
//!   mask and the patch grid;
//! * `register`: registration computed from the images: serial sections to one another,
//!   a section to the plane of its volume; the transforms file and the resampled stack;
//! * `stain`: stain normalisation of H&E images to a reference slide (Macenko), at ingest;
//! * `ingest`: streaming, resumable volume ingest and spot ingest; a HEST-1k sample
//!   (slide + spots + metadata) in one call;
//! * `query`: molecular queries, profile and patch retrieval, triage, 3D heatmaps;
//! * `predict`: predicted expression per patch, by one of three readouts: the model's
//!   predictor head, the k nearest reference spots (BLEEP-style kNN), or the ridge
//!   readout fitted on reference spots (with spatial context);
//! * `domains`: k-means spatial domains, label volumes, ARI against a segmentation;
//! * `stats`: pure statistics (Pearson, Spearman, SSIM, ARI, ROC AUC, Moran's I,
//!   Geary's C), used by `predict`, `domains` and `metrics` alike;
//! * `metrics`: the evaluation of predictions against measured spots and its report;
//! * `phantom`: a deterministic synthetic tissue phantom (volume, H&E planes, spots);
//! * `demo`: the whole workflow on a phantom, as a typed report;
//! * `export`: every file the library writes on request; `render`: the images and the
//!   Markdown report it draws (internal: reached through `export`);
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

#![warn(missing_docs)]

mod catalog;
mod codec;
mod demo;
mod domains;
mod engine;
mod error;
mod export;
mod expression;
mod index;
mod ingest;
mod limits;
mod maintenance;
mod metrics;
mod model;
mod names;
mod phantom;
mod predict;
mod query;
mod register;
mod render;
mod spots;
mod stain;
mod stats;
mod vecio;
mod volume;

// Errors.
pub use error::{Error, Layer, Result, UnknownGene};

// The store: the vector engine (collections, vectors, tombstones, import marks,
// snapshots, search), the catalog above it (models, samples, spots, predictions,
// domains) and whole-store maintenance (backup).
pub use catalog::{
    DomainRecord, ExpressionRecord, IngestStatus, MODELS_DIR, Modality, ModelRecord,
    READOUT_FORMAT, ReadoutRecord, SampleImages, SampleKind, SamplePredictions, SampleRecord,
    SpotBatch, SpotRecord, SpotSetRecord, StoreSummary, collection_name,
};
pub use codec::{FORMAT_VERSION, OLDEST_SUPPORTED};
pub use engine::{
    CollectionDisk, CollectionInfo, CollectionSpec, DB_FILE, Filter, Hit, INDEX_DIR, ImportMark,
    ImportProgress, LOCK_FILE, NewVector, PatchRecord, Region, Scored, ScoredPatch, SearchOptions,
    SnapshotState, Store, StoreInfo, VECTORS_DIR,
};
pub use maintenance::{BackupReport, CheckReport, check_store, rebuild_indexes, repair_store};

// The HNSW index.
pub use index::{
    HnswParams, Metric, Quantization, SnapshotFile, SnapshotInfo, VectorIndex, prepare,
};

// Models and ONNX Runtime.
pub use model::embedded::{resolve as resolve_default_model, write_to as write_default_model};
pub use model::runtime::{
    ORT_VERSION, loaded_library as loaded_runtime_library, prefer_library as prefer_runtime_library,
};
pub use model::{
    DataFileSpec, Device, EmbedFileOptions, EmbedFileOutput, MANIFEST_FILE, MANIFEST_FORMAT,
    Manifest, Model, Network, NetworkSpec, PatchSpec, RunOptions,
};

// Volumes, images, the patch grid.
pub use volume::grid::{Grid, Polarity};
pub use volume::{
    ArrayVolume, Dtype, ImageStack, IntensityRange, LevelChoice, NpyVolume, PyramidLevel,
    PyramidTiff, Slice, TiffVolume, VolumeInfo, VolumeSource, ZarrLevel, ZarrVolume, decode_image,
    is_tiff, is_zarr, open as open_volume, open_level as open_volume_level,
};

// Stain normalisation of H&E sources to a reference slide.
pub use stain::{StainBasis, StainNormalized};
// Registration computed from the images: serial sections, a section to its volume.
pub use register::{
    Affine, FORMAT as TRANSFORMS_FORMAT, Field, Motion, PLANE_FORMAT, PairReport, Plane, PlaneFile,
    PlaneOptions, Registered, SectionOptions, SectionRegistration, Transforms,
    register_section_to_volume, register_sections, write_plane, write_registration,
};

// Spot files and expression processing.
pub use expression::{
    CountMatrix, GeneIndex, QcSettings, QcSummary, SpotQc, dense_panel, highly_variable_genes,
    normalize_log1p, quality_control, smooth_knn, top_expressed,
};
pub use spots::{H5adOptions, SpotFormat, SpotPaths, SpotPositions, SpotTable, read_spots};

// Vector files.
pub use vecio::{
    VectorBatch, VectorReader, read_all as read_vectors, read_f32_nd, write_f32_array_npy,
    write_f32_npy, write_ids_npy, write_u8_array_npy, write_u8_npy,
};

// Ingest.
pub use ingest::{
    Encoder, HestReport, HestSample, ImportAck, ImportOptions, ImportReport, IngestOptions,
    IngestReport, Progress, Sections, SpotOptions, SpotReport, VectorSearch, default_polarity,
    import_array, import_vectors, ingest_hest, ingest_image, ingest_image_source,
    ingest_section_stack, ingest_sections, ingest_spots, ingest_volume, open_sample_images,
    open_volume_for, read_sample_image, resolve_model, search_array, search_vectors,
};

// Queries.
pub use query::heatmap::{Heatmap, auto_downsample, heatmap};
pub use query::{
    GeneProfile, GeneQuery, PatchHit, PatchQuery, PatchResult, PatchSource, PoolSample, PoolSpot,
    Profile, QueryResult, QuerySummary, RankedPatch, ScoreOptions, SpotPool, TriageRow,
    close_matches, gene_profile, gene_profile_of, profile_embedding, query_embedding, query_genes,
    query_patch, query_profile, rank_patches, read_profile, score_percentile, triage,
};

// Prediction, domains, evaluation.
pub use domains::{
    DomainSummary, Domains, KMeans, KMeansOptions, ari_against, compute as cluster_patches,
    find_domains, kmeans, label_volume, read_segmentation,
};
pub use metrics::compare::{
    Comparison, EvalOptions, EvalSummary, Evaluation, compare, evaluate_sample,
};
pub use metrics::eval::{EvalInput, EvalReport, GeneEval, evaluate};
pub use predict::{
    Method, Predictions, RIDGE_ALPHAS, RIDGE_CONTEXT_UM, RIDGE_DEFAULT_ALPHA, ReadoutOptions,
    RidgeFit, fit_readout, predict,
};
pub use stats::{
    SpatialWeights, adjusted_rand_index, average_ranks, gearys_c, grid_spots, min_max, morans_i,
    nanmean, pearson, roc_auc, spearman, ssim, ssim_window,
};

// Files written on request.
pub use export::{
    QueryExport, SpatialDataExport, SpatialDataOptions, SpotsExport, write_domains, write_eval,
    write_gene_volumes, write_json, write_ome_zarr, write_ome_zarr_labels, write_png,
    write_predictions_parquet, write_query, write_spatialdata, write_spots, write_tiff,
};

// The demo and the phantom.
pub use demo::{
    DemoDomain, DemoDomains, DemoFigure, DemoFiles, DemoHit, DemoIngest, DemoOptions, DemoPhantom,
    DemoPrediction, DemoQuery, DemoReport, DemoRetrieval, run_demo,
};
pub use phantom::{PhantomFiles, PhantomParams, PhantomSummary, generate as generate_phantom};

// Limits and names.
pub use limits::{
    ARG_RULES, ArgRule, BUDGET_ENV, MAX_DOMAINS, MAX_EF, MAX_K, count as check_count, memory_budget,
};
pub use names::{file_stem, unique_stems, valid_id};
