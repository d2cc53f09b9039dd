//! The whole VORTEX workflow on a synthetic phantom through the public API only:
//! ingest a 3D volume and its spots, a molecular query to a 3D heatmap array, predicted
//! expression, spatial domains and the evaluation. Nothing is written outside the store
//! except by the explicit export call at the end. Run: `cargo run --release --example
//! workflow [DIR]` (default: a temporary directory).
use std::path::Path;
use vortexdb::{
    EvalOptions, GeneQuery, IngestOptions, KMeansOptions, Method, PhantomParams, QueryExport,
    Result, ScoreOptions, SpotFormat, SpotOptions, SpotPaths, Store, evaluate_sample, find_domains,
    generate_phantom, ingest_spots, ingest_volume, open_volume, predict, query_genes, read_spots,
    write_default_model, write_query,
};

/// Figures of one run (the test asserts them).
pub struct Figures {
    /// Heatmap of the TUM01 query: shape and its highest value.
    pub heatmap: ([usize; 3], f32),
    /// Patches ingested, spots kept.
    pub patches: u64,
    pub spots: usize,
    /// Mean PCC of predicted against measured expression, domain ARI vs the truth.
    pub pcc: f64,
    pub ari: f64,
}

/// Run the workflow in `dir` (phantom input, model, store; query files under `dir/q`).
pub fn run(dir: &Path) -> Result<Figures> {
    let params = PhantomParams::new(7, [32, 160, 160]); // seed 7: held out from the model
    let ph = generate_phantom(&params, dir.join("phantom"))?;
    let store = Store::create(dir.join("store"))?;
    store.add_model(&write_default_model(&dir.join("model"))?)?;
    let model = store.load_model(None)?;

    let opts = IngestOptions::new("ph7");
    let volume = open_volume(&ph.files.volume, None)?;
    let ingest = ingest_volume(&store, &model, volume, &opts, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })?;
    let table = read_spots(&ph.files.spots, SpotFormat::Parquet, &SpotPaths::default())?;
    let spots = ingest_spots(&store, &model, table, &SpotOptions::new("ph7"))?;

    // Genes -> spots high in them -> their mean embedding -> similarity of every patch.
    let query = GeneQuery::new(vec!["TUM01".into()]);
    let q = query_genes(&store, &query, &ScoreOptions::default())?;
    let heat = q.heatmap(&store, "ph7", None)?;
    let best = heat.percentile(100.0).unwrap_or(f32::NAN); // NaN outside the patches

    let pred = predict(&store, "ph7", &Method::Predictor)?;
    let domains = find_domains(
        &store,
        "ph7",
        &KMeansOptions::new(4),
        Some(&ph.files.labels),
    )?;
    let eval = evaluate_sample(&store, &pred, &EvalOptions::default())?;

    write_query(&dir.join("q"), &store, &q, &QueryExport::default())?;
    Ok(Figures {
        heatmap: (heat.shape, best),
        patches: ingest.patches_total,
        spots: spots.qc.kept,
        pcc: eval.comparison.report.pcc_all,
        ari: domains.ari.map_or(f64::NAN, |a| a.0),
    })
}

fn main() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| vortexdb::Error::io(".", e))?;
    let arg = std::env::args().nth(1).map(std::path::PathBuf::from);
    let f = run(arg.as_deref().unwrap_or(tmp.path()))?;
    let ((shape, max), (pcc, ari)) = (f.heatmap, (f.pcc, f.ari));
    println!(
        "{} patches, {} spots; TUM01 heatmap {shape:?}",
        f.patches, f.spots
    );
    println!("max similarity {max:.3}; PCC {pcc:.3}; domains ARI {ari:.3}");
    Ok(())
}
