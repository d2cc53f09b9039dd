//! Spatial domains: k-means over the predictor's hidden representation of every patch
//! of a sample, turned into a 3D label volume and per-domain summaries.

pub mod kmeans;

pub use kmeans::{KMeans, KMeansOptions, kmeans};
