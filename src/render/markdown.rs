//! The Markdown report of an evaluation (`eval.md`).

use crate::metrics::eval::EvalReport;

/// The Markdown report of an evaluation of `sample` against the spots of `spots`; `body`
/// is the evaluation's JSON (its `method` and `measured` fields are shown).
pub fn eval_markdown(
    sample: &str,
    spots: &str,
    body: &serde_json::Value,
    r: &EvalReport,
    ari: Option<(f64, usize)>,
) -> String {
    let f = |v: f64| format!("{v:.3}");
    let mut s = format!(
        "# Evaluation of '{sample}' against the spots of '{spots}'\n\n\
         Method: `{}`; measured values: {}.\n\n\
         | metric | value |\n|---|---|\n\
         | spots | {} |\n| sections | {} |\n| genes | {} |\n\
         | PCC, all genes | {} |\n| PCC, 50 best-predicted genes | {} |\n| PCC, markers | {} |\n\
         | SSIM (spots gridded, min-max scaled) | {} |\n| Spearman of per-gene variances | {} |\n\
         | Moran's I predicted / measured | {} / {} |\n| Geary's C predicted / measured | {} / {} |\n",
        body["method"],
        body["measured"].as_str().unwrap_or(""),
        r.spots,
        r.sections,
        r.genes,
        f(r.pcc_all),
        f(r.pcc_top50),
        r.pcc_markers.map(f).unwrap_or_else(|| "-".into()),
        f(r.ssim),
        f(r.variance_spearman),
        f(r.moran_predicted),
        f(r.moran_measured),
        f(r.geary_predicted),
        f(r.geary_measured),
    );
    if body["in_sample"].as_bool() == Some(true) {
        s.push_str(
            "\n**IN-SAMPLE**: the scored spots are also the readout's reference; these \
             figures are a fit, not a held-out prediction.\n",
        );
    }
    if let Some((v, n)) = ari {
        s.push_str(&format!(
            "| domains ARI vs segmentation | {} ({n} patches) |\n",
            f(v)
        ));
    }
    if !r.markers_missing.is_empty() {
        s.push_str(&format!(
            "\nMarkers not predicted: {}.\n",
            r.markers_missing.join(", ")
        ));
    }
    s.push_str("\n![PCC per gene](pcc.png)\n\n## Per gene (best PCC first)\n\n| gene | PCC | SSIM | Moran's I pred / meas | Geary's C pred / meas |\n|---|---|---|---|---|\n");
    for e in &r.per_gene {
        s.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} / {} |\n",
            e.gene,
            f(e.pcc),
            f(e.ssim),
            f(e.moran_predicted),
            f(e.moran_measured),
            f(e.geary_predicted),
            f(e.geary_measured)
        ));
    }
    s
}
