//! The demo's static HTML report: one self-contained page (images inlined as base64)
//! rendered from the demo's summary, with the figure files beside it. It lives in
//! `demo` (not `render`) because it renders the demo's own report type.

use std::fmt::Write as _;
use std::path::Path;

use super::DemoReport;
use crate::error::{Error, Result};
use crate::phantom::COMPARTMENTS;
use crate::render::PALETTE;

/// Standard base64 (RFC 4648) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn img_tag(dir: &Path, rel: &str, alt: &str) -> Result<String> {
    let p = dir.join(rel);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    Ok(format!(
        "<figure><img alt=\"{alt}\" src=\"data:image/png;base64,{}\"><figcaption>{alt}</figcaption></figure>",
        base64(&bytes)
    ))
}

fn f3(v: &serde_json::Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.3}"))
        .unwrap_or_else(|| "-".into())
}

/// The report page of a demo run in `dir` (its figures are read from there), rendered
/// from the demo's report `r` (through its JSON, the same values as `summary.json`),
/// with the H&E plane `hne` shown beside the ground truth.
pub fn report_html(dir: &Path, r: &DemoReport, hne: Option<&Path>) -> Result<String> {
    let s = &serde_json::to_value(r).map_err(|e| Error::bad_file(dir, e.to_string()))?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vortexdb demo report</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th{{background:#f2f2f2}}td:first-child,th:first-child{{text-align:left}}\
         figure{{display:inline-block;margin:4px;text-align:center}}img{{width:256px;image-rendering:pixelated;border:1px solid #ddd}}\
         figcaption{{font-size:.85em}}.num{{font-weight:bold}}</style></head><body>"
    );
    let ph = &s["phantom"];
    let _ = write!(
        h,
        "<h1>vortexdb demo report</h1><p>Synthetic phantom (seed {}, {} voxels of 4 um, {} spots), the built-in model \
         <code>{}</code>. Everything below was computed by <code>vortexdb demo</code> in <span class=\"num\" id=\"total-seconds\">{:.1}</span> s.</p>",
        ph["seed"],
        ph["shape"]
            .as_array()
            .map(|v| v
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" x "))
            .unwrap_or_default(),
        ph["spots"],
        s["model"].as_str().unwrap_or(""),
        s["seconds"].as_f64().unwrap_or(0.0)
    );
    let ing = &s["ingest"];
    let _ = write!(
        h,
        "<h2>Ingest</h2><p><span class=\"num\" id=\"patches\">{}</span> patches stored of {} grid positions in {:.1} s ({:.0} patches/s); {} spots kept.</p>",
        ing["patches"],
        ing["grid_positions"],
        ing["seconds"].as_f64().unwrap_or(0.0),
        ing["patches_per_second"].as_f64().unwrap_or(0.0),
        ing["spots_kept"]
    );
    h.push_str("<p>");
    if let Some(p) = hne {
        let rel = p
            .strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        h.push_str(&img_tag(dir, &rel, "H&amp;E plane near the middle slice")?);
    }
    h.push_str(&img_tag(
        dir,
        "figures/truth.png",
        "ground-truth compartments (middle slice)",
    )?);
    let legend: String = (1..=4)
        .map(|l| {
            let c = PALETTE[(l + 5) % 10];
            format!(
                "<span style=\"display:inline-block;width:1em;height:1em;background:rgb({},{},{});vertical-align:middle\"></span> {} ",
                c[0], c[1], c[2], COMPARTMENTS[l]
            )
        })
        .collect();
    let _ = write!(h, "</p><p id=\"legend\">Ground truth: {legend}");
    h.push_str("</p><h2>Molecular queries (gene &rarr; morphology)</h2><p>Each query: the gene, genes correlated with it (PCC &gt; 0.5), spots above the 75th percentile, their mean transcriptomic embedding, cosine similarity with every 3D patch, overlap-averaged into a heatmap (coolwarm, 10th&ndash;90th percentile, middle slice). AUC: similarity against the patch-centre compartment.</p>\
        <table id=\"queries\"><tr><th>gene</th><th>program</th><th>correlated genes</th><th>spots used</th><th>AUC</th><th>top 10 in compartment</th></tr>");
    let mut figs = String::new();
    for q in s["queries"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            q["gene"].as_str().unwrap_or(""),
            q["program"].as_str().unwrap_or(""),
            q["correlated"],
            q["spots"],
            q["spots_total"],
            f3(&q["auc"]),
            q["top10_in_compartment"]
                .as_u64()
                .map(|v| format!("{v}/10"))
                .unwrap_or_else(|| "-".into())
        );
        figs.push_str(&img_tag(
            dir,
            q["figure"].as_str().unwrap_or(""),
            &format!(
                "{} ({})",
                q["gene"].as_str().unwrap_or(""),
                q["program"].as_str().unwrap_or("")
            ),
        )?);
    }
    h.push_str("</table><p>");
    h.push_str(&figs);
    let rt = &s["retrieval"];
    let _ = write!(
        h,
        "</p><h2>Morphology retrieval</h2><p>Query: the tumour patch at origin {} (z, y, x). <span class=\"num\" id=\"retrieval-same\">{}</span>/10 of its nearest patches are tumour.</p>\
         <table id=\"retrieval\"><tr><th>rank</th><th>patch</th><th>origin (z, y, x)</th><th>similarity</th><th>compartment</th></tr>",
        rt["query_origin"], rt["top10_same_compartment"]
    );
    for (i, hit) in rt["hits"].as_array().into_iter().flatten().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            hit["id"],
            hit["origin"],
            f3(&hit["score"]),
            hit["compartment"].as_str().unwrap_or("")
        );
    }
    let p = &s["prediction"];
    let _ = write!(
        h,
        "</table><h2>Predicted expression</h2><p>The predictor head on every patch, read out at the {} spots and compared with their measured expression over {} genes.</p>\
         <table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>\
         <tr><td>PCC, all genes</td><td>{}</td></tr><tr><td>PCC, 50 best-predicted genes</td><td>{}</td></tr>\
         <tr><td>PCC, one marker per program</td><td>{}</td></tr><tr><td>SSIM (gridded spots)</td><td>{}</td></tr>\
         <tr><td>Spearman of per-gene variances</td><td>{}</td></tr><tr><td>Moran's I predicted / measured</td><td>{} / {}</td></tr>\
         <tr><td>Geary's C predicted / measured</td><td>{} / {}</td></tr></table><p>",
        p["spots"],
        p["genes"],
        f3(&p["pcc_all"]),
        f3(&p["pcc_top50"]),
        f3(&p["pcc_markers"]),
        f3(&p["ssim"]),
        f3(&p["variance_spearman"]),
        f3(&p["moran_predicted"]),
        f3(&p["moran_measured"]),
        f3(&p["geary_predicted"]),
        f3(&p["geary_measured"])
    );
    for f in p["figures"].as_array().into_iter().flatten() {
        h.push_str(&img_tag(
            dir,
            f["figure"].as_str().unwrap_or(""),
            &format!("predicted {}", f["gene"].as_str().unwrap_or("")),
        )?);
    }
    let dm = &s["domains"];
    let _ = write!(
        h,
        "</p><h2>Spatial domains</h2><p>k-means (k = 4, 10 restarts) on the predictor's hidden representation of every patch. ARI against the phantom's compartments: <span class=\"num\" id=\"ari\">{}</span> ({} patches).</p>\
         <table id=\"domains\"><tr><th>domain</th><th>patches</th><th>share</th><th>top predicted genes</th><th>majority compartment</th></tr>",
        f3(&dm["ari"]),
        dm["ari_patches"]
    );
    for d in dm["domains"].as_array().into_iter().flatten() {
        let genes: Vec<String> = d["top_genes"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .filter_map(|g| g[0].as_str().map(String::from))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{} ({:.0}%)</td></tr>",
            d["domain"],
            d["patches"],
            100.0 * d["fraction"].as_f64().unwrap_or(0.0),
            genes.join(", "),
            d["majority_compartment"].as_str().unwrap_or(""),
            100.0 * d["majority_share"].as_f64().unwrap_or(0.0)
        );
    }
    h.push_str("</table><p>");
    h.push_str(&img_tag(
        dir,
        "figures/domains.png",
        "domains (middle slice)",
    )?);
    h.push_str(&img_tag(
        dir,
        "figures/truth.png",
        "ground truth (middle slice)",
    )?);
    h.push_str("</p><h2>Files</h2><ul><li><code>store/</code>: the vortexdb store (open it with any command)</li>\
        <li><code>phantom/</code>: the generated volume, labels, H&amp;E planes and spots</li>\
        <li><code>predictions.parquet</code>: predicted expression of every patch</li>\
        <li><code>figures/</code>: the PNGs above</li><li><code>summary.json</code>: every figure of this report</li></ul></body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
