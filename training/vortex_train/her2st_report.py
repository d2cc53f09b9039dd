"""Tables and figures of the her2st evaluation (`scripts/her2st-eval.sh` runs it last).

Reads what the script left in its work directory (the registered volume and labels, the
training runs' JSON, and per held-out section and model the stores' `eval`, `query` and
`domains` outputs) and writes `docs/eval/results.md`, `docs/eval/results.json` and PNG
figures. Every number in docs/EVALUATION.md comes from here.

Labels: the expression-cluster label of every spot (labels/clusters). A cluster is a
*tumour* cluster when its spots' mean ERBB2+GRB7 expression (log1p-normalised, mean of
the two) is above the mean over all spots of C1-C6, and an *immune* cluster likewise for
the immune program; the query heatmap is then scored by the AUC of its value at the
held-out section's spots against that binary label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

METHODS = [
    ("2_5d", "model", "vortexdb 2.5D (depth 3, +-32 um)"),
    ("2d", "model", "vortexdb 2D (depth 1)"),
    ("2_5d", "knn", "BLEEP-style kNN, 2.5D embeddings"),
    ("2d", "knn", "BLEEP-style kNN, 2D embeddings"),
    ("2_5d", "ridge", "ridge readout, 2.5D store features"),
    ("2d", "ridge", "ridge readout, 2D store features"),
    # scripts/her2st-transfer.sh: the readout fitted once on the other sections' spots,
    # stored, applied to the held-out section ingested as a sample of its own, no spots.
    ("2_5d", "transfer/readout", "stored readout, 2.5D, held-out section as its own sample"),
    ("2d", "transfer/readout", "stored readout, 2D, held-out section as its own sample"),
]
SHORT = {"model": "", "knn": "kNN ", "ridge": "ridge ", "transfer/readout": "stored "}


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count half)."""
    pos, neg = label.sum(), (~label).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    r = np.empty(len(score))
    r[order] = np.arange(1, len(score) + 1)
    vals, counts = np.unique(score, return_counts=True)
    for v in vals[counts > 1]:
        r[score == v] = r[score == v].mean()  # ties share their average rank
    return float((r[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    m = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(m, (ai, bi), 1)

    def c2(x):
        return (x * (x - 1) / 2).sum()

    n = len(a)
    idx, ea, eb = c2(m), c2(m.sum(1)), c2(m.sum(0))
    exp = ea * eb / (n * (n - 1) / 2)
    return float((idx - exp) / ((ea + eb) / 2 - exp))


def _scores(vol_dir: Path, genes: list[str]) -> dict[str, np.ndarray]:
    """Per section, spot id -> mean log1p-normalised expression of `genes`."""
    import pyarrow.parquet as pq

    want = {g.upper() for g in genes}
    out = {}
    for f in sorted(vol_dir.glob("spots_*.parquet")):
        t = pq.read_table(f, columns=["spot", "gene", "count"]).to_pandas()
        tot = t.groupby("spot")["count"].sum()
        sel = t[t["gene"].str.upper().isin(want)]
        val = np.log1p(sel["count"].to_numpy() / tot.loc[sel["spot"]].to_numpy() * 1e4)
        per = (sel.assign(v=val).groupby("spot")["v"].sum() / len(want)).reindex(tot.index, fill_value=0.0)
        out[f.stem.split("_", 1)[1]] = per
    return out


def _sample(vol: np.ndarray, src_shape, z: int, x: np.ndarray, y: np.ndarray, r_px: float = 0) -> np.ndarray:
    """Values of a (possibly downsampled) volume at source positions; with `r_px`, the
    NaN-ignoring mean over the square of that half-width (a spot's footprint)."""
    s = [vol.shape[i] / src_shape[i] for i in range(3)]
    zi = min(int(z * s[0]), vol.shape[0] - 1)
    out = np.empty(len(x))
    r = max(0, int(round(r_px * s[1])))
    for i, (xx, yy) in enumerate(zip(x, y, strict=True)):
        yi, xi = int(yy * s[1]), int(xx * s[2])
        win = vol[zi, max(yi - r, 0) : yi + r + 1, max(xi - r, 0) : xi + r + 1].astype(float)
        out[i] = np.nanmean(win) if np.isfinite(win).any() else np.nan
    return out


def _coolwarm(t: np.ndarray) -> np.ndarray:
    """Diverging blue-white-red colours for t in [0, 1] (RGB, 0-255)."""
    lo, mid, hi = np.array([59, 76, 192.0]), np.array([221, 221, 221.0]), np.array([180, 4, 38.0])
    t = np.clip(t, 0, 1)[..., None]
    return np.where(t < 0.5, lo + (mid - lo) * (t / 0.5), mid + (hi - mid) * ((t - 0.5) / 0.5))


def _overlay(he: np.ndarray, heat: np.ndarray, spots, mark: np.ndarray, path: Path, width: int = 480,
             r: float = 14) -> None:  # fmt: skip
    """H&E slice with the heatmap (coolwarm, alpha 0.35, 10th-90th percentile) and the
    spots of the marked clusters ringed in black, the others in white."""
    from PIL import Image, ImageDraw

    h = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((he.shape[1], he.shape[0]), Image.NEAREST))
    ok = np.isfinite(h)
    lo, hi = np.percentile(h[ok], [10, 90]) if ok.any() else (0, 1)
    col = _coolwarm((h - lo) / max(hi - lo, 1e-9))
    rgb = he.astype(float)
    rgb[ok] = 0.65 * rgb[ok] + 0.35 * col[ok]
    im = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for (x, y), m in zip(spots, mark, strict=True):
        d.ellipse([x - r, y - r, x + r, y + r], outline=(0, 0, 0) if m else (255, 255, 255), width=max(3, round(r / 5)))
    im.resize((width, round(width * im.height / im.width)), Image.LANCZOS).quantize(128).save(path)


def _label_map(he: np.ndarray, labels: np.ndarray, spots, clusters, path: Path, width: int = 480,
               r: float = 12) -> None:  # fmt: skip
    """Domain labels over one slice (a downsampled label image is scaled to the slice),
    with the spots filled by their expression cluster."""
    from PIL import Image, ImageDraw

    pal = np.array(
        [
            [255, 255, 255],
            [228, 26, 28],
            [55, 126, 184],
            [77, 175, 74],
            [152, 78, 163],
            [255, 127, 0],
            [166, 86, 40],
            [247, 129, 191],
            [153, 153, 153],
        ],
        float,
    )
    lab = np.asarray(labels)
    if lab.shape != he.shape[:2]:
        lab = np.asarray(Image.fromarray(lab.astype(np.int32)).resize((he.shape[1], he.shape[0]), Image.NEAREST))
    rgb = np.where((lab > 0)[..., None], 0.5 * pal[lab % len(pal)] + 0.5 * he, he)
    im = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for (x, y), c in zip(spots, clusters, strict=True):
        d.ellipse(
            [x - r, y - r, x + r, y + r],
            fill=tuple(int(v) for v in pal[(int(c) + 1) % len(pal)]),
            outline=(0, 0, 0),
            width=2,
        )
    im.resize((width, round(width * im.height / im.width)), Image.LANCZOS).quantize(128).save(path)


def _montage(imgs: list[np.ndarray], names: list[str], path: Path, width: int = 300) -> None:
    """The registered sections side by side."""
    from PIL import Image, ImageDraw

    small = [Image.fromarray(i).resize((width, round(width * i.shape[0] / i.shape[1])), Image.LANCZOS) for i in imgs]
    m = Image.new("RGB", (width * len(small), small[0].height + 16), "white")
    d = ImageDraw.Draw(m)
    for k, (im, n) in enumerate(zip(small, names, strict=True)):
        m.paste(im, (k * width, 16))
        d.text((k * width + 4, 2), n, fill="black")
    m.save(path)


def _bars(rows: list[tuple[str, list[float]]], series: list[str], path: Path, title: str) -> None:
    """A small grouped bar chart (PIL only): one group per row, one bar per series."""
    from PIL import Image, ImageDraw

    cols = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    w, h, left, top, bottom = max(760, 100 + 140 * len(series)), 360, 50, 40, 60
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    vmax = max(0.7, max(v for _, vals in rows for v in vals if np.isfinite(v)))
    gw = (w - left - 20) / len(rows)
    bw = gw * 0.8 / len(series)
    d.text((left, 10), title, fill="black")
    for t in np.arange(0, vmax + 1e-9, 0.1):
        yy = h - bottom - t / vmax * (h - top - bottom)
        d.line([left, yy, w - 20, yy], fill=(225, 225, 225))
        d.text((5, yy - 6), f"{t:.1f}", fill="black")
    for gi, (name, vals) in enumerate(rows):
        x0 = left + gi * gw + gw * 0.1
        for si, v in enumerate(vals):
            if np.isfinite(v):
                yy = h - bottom - v / vmax * (h - top - bottom)
                d.rectangle([x0 + si * bw, yy, x0 + (si + 1) * bw - 2, h - bottom], fill=cols[si % len(cols)])
        d.text((x0, h - bottom + 5), name, fill="black")
    for si, s in enumerate(series):
        d.rectangle([left + si * 140, h - 22, left + si * 140 + 10, h - 12], fill=cols[si % len(cols)])
        d.text((left + si * 140 + 14, h - 24), s, fill="black")
    im.save(path)


def report(work: Path, holdouts: list[str], out: Path, seconds: float | None = None) -> dict:
    """Compute every table and figure; write results.md/json and PNGs into `out`."""
    import pandas as pd
    from PIL import Image

    work, out = Path(work), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((work / "volume" / "volume.json").read_text())
    stack = meta["stack"]
    src_shape = (len(stack), *meta["size_px"])
    spot_r = 49.0 / meta["um_per_px"]  # a 100 um spot's half-width (14 px at 3.5 um/px)
    labels = pd.read_csv(work / "volume" / "labels.csv")
    immune_genes = json.loads((work / "out" / f"{holdouts[0]}-2_5d" / "q_immune" / "query.json").read_text())
    immune_genes = immune_genes["query"]["genes"]
    progs = {"ERBB2+GRB7": (["ERBB2", "GRB7"], "q_erbb2"), "immune": (immune_genes, "q_immune")}
    sec_imgs = {s: np.asarray(Image.open(work / "volume" / "sections" / f"{s}.png").convert("RGB")) for s in stack}
    masks = [sec_imgs[s].mean(2) < 200 for s in stack]
    meta["tissue_dice_neighbours"] = {
        f"{a}-{b}": round(float(2 * (m & n).sum() / (m.sum() + n.sum())), 3)
        for a, b, m, n in zip(stack, stack[1:], masks, masks[1:], strict=False)
    }
    _montage([sec_imgs[s] for s in stack], stack, out / "sections.png")
    res: dict = {"volume": meta, "holdouts": holdouts, "prediction": {}, "queries": {}, "domains": {}, "programs": {}}
    # Work directories of earlier runs have no ridge readout: their methods only.
    methods = [m for m in METHODS if (work / "out" / f"{holdouts[0]}-{m[0]}" / m[1] / "eval.json").exists()]
    res["methods"] = [m[2] for m in methods]
    # Which clusters carry each program (over all spots of C1-C6).
    for pname, (genes, _) in progs.items():
        sc = _scores(work / "volume", genes)
        labels[pname] = [float(sc[s].get(i, np.nan)) for s, i in zip(labels["section"], labels["spot"], strict=True)]
        lab = labels[labels["cluster"] >= 0]
        means = lab.groupby("cluster")[pname].mean()
        pos = sorted(int(c) for c in means.index[means > lab[pname].mean()])
        res["programs"][pname] = {
            "genes": genes,
            "clusters": pos,
            "cluster_means": {int(k): round(float(v), 3) for k, v in means.items()},
        }
    for h in holdouts:
        z = stack.index(h)
        sp = labels[(labels["section"] == h) & (labels["cluster"] >= 0)]
        he = sec_imgs[h]
        tr = json.loads((work / f"{h}.json").read_text())
        pred = {}
        for var, kind, name in methods:
            e = json.loads((work / "out" / f"{h}-{var}" / kind / "eval.json").read_text())["report"]
            pred[name] = {
                k: e[k]
                for k in (
                    "pcc_all",
                    "pcc_top50",
                    "pcc_markers",
                    "ssim",
                    "moran_predicted",
                    "moran_measured",
                    "variance_spearman",
                    "spots",
                    "genes",
                )
            }
        for var, kind, name in methods:
            e = json.loads((work / "out" / f"{h}-{var}" / kind / "eval.json").read_text())["report"]
            found = set(e["markers_found"])
            pred[name]["marker_pcc"] = {g["gene"]: g["pcc"] for g in e["per_gene"] if g["gene"] in found}
        pred["mean expression"] = {"mse": tr["mean_expression"]["mse"]}
        mse = {
            "vortexdb 2.5D (depth 3, +-32 um)": "vortex_2_5d",
            "vortexdb 2D (depth 1)": "vortex_2d",
            "BLEEP-style kNN, 2.5D embeddings": "bleep_knn_2_5d",
            "BLEEP-style kNN, 2D embeddings": "bleep_knn_2d",
        }
        for name, key in mse.items():
            pred[name]["mse_training_side"] = tr[key]["mse"]
            pred[name]["pcc_all_training_side"] = tr[key]["pcc_all"]
        res["prediction"][h] = pred
        for var in ("2_5d", "2d"):
            base = work / "out" / f"{h}-{var}"
            for pname, (_genes, qdir) in progs.items():
                heat = np.load(base / qdir / "heatmap_her2st.npy", mmap_mode="r")
                vals = _sample(heat, src_shape, z, sp["x"].to_numpy(), sp["y"].to_numpy(), r_px=spot_r)
                mark = sp["cluster"].isin(res["programs"][pname]["clusters"]).to_numpy()
                finite = np.isfinite(vals)
                allv = np.asarray(heat[min(int(z * heat.shape[0] / src_shape[0]), heat.shape[0] - 1)]).ravel()
                allv = np.sort(allv[np.isfinite(allv)])
                pct = np.searchsorted(allv, vals[finite]) / max(len(allv), 1) * 100
                q = json.loads((base / qdir / "query.json").read_text())["query"]
                meas = sp[pname].to_numpy()
                res["queries"][f"{h}-{var}-{pname}"] = {
                    "auc": auc(vals[finite], mark[finite]),
                    # The reference: the held-out spots' own measured program expression.
                    "auc_measured": auc(meas[np.isfinite(meas)], mark[np.isfinite(meas)]),
                    "spots": int(finite.sum()),
                    "marked": int(mark.sum()),
                    "median_percentile_marked": float(np.median(pct[mark[finite]])) if mark[finite].any() else None,
                    "median_percentile_other": float(np.median(pct[~mark[finite]])) if (~mark[finite]).any() else None,
                    "filter_genes": len(q.get("thresholds", [])),
                    "query_spots": q.get("spots_selected"),
                }
                if var == "2_5d":
                    _overlay(
                        he,
                        np.asarray(heat[min(int(z * heat.shape[0] / src_shape[0]), heat.shape[0] - 1)]),
                        sp[["x", "y"]].to_numpy(),
                        mark,
                        out / f"query_{pname.split('+')[0].lower()}_{h}.png",
                        r=spot_r,
                    )
            for k in (4, 5):
                dom = np.load(base / f"domains_k{k}" / "domains.npy", mmap_mode="r")
                allsp = labels[(labels["cluster"] >= 0) & (labels["z"] >= 0)]
                d_all = np.concatenate(
                    [
                        _sample(dom, src_shape, int(zz), g["x"].to_numpy(), g["y"].to_numpy())
                        for zz, g in allsp.groupby("z", sort=False)
                    ]
                )
                c_all = np.concatenate([g["cluster"].to_numpy() for _, g in allsp.groupby("z", sort=False)])
                d_h = _sample(dom, src_shape, z, sp["x"].to_numpy(), sp["y"].to_numpy())
                ok_all, ok_h = d_all > 0, d_h > 0
                entry = {
                    "ari_all_sections": ari(d_all[ok_all], c_all[ok_all]),
                    "spots_all": int(ok_all.sum()),
                    "ari_holdout": ari(d_h[ok_h], sp["cluster"].to_numpy()[ok_h]),
                    "spots_holdout": int(ok_h.sum()),
                }
                c1 = labels[(labels["section"] == "C1") & labels["pathologist"].fillna("").ne("")]
                if len(c1) and stack[0] == "C2":
                    d1 = _sample(dom, src_shape, 0, c1["x"].to_numpy(), c1["y"].to_numpy())
                    ok1 = d1 > 0
                    entry["ari_c1_pathologist_via_c2"] = ari(d1[ok1], c1["pathologist"].to_numpy()[ok1])
                    entry["spots_c1"] = int(ok1.sum())
                res["domains"][f"{h}-{var}-k{k}"] = entry
                if var == "2_5d" and k == 5:
                    _label_map(
                        he,
                        np.asarray(dom[min(int(z * dom.shape[0] / src_shape[0]), dom.shape[0] - 1)]),
                        sp[["x", "y"]].to_numpy(),
                        sp["cluster"].to_numpy(),
                        out / f"domains_k5_{h}.png",
                        r=spot_r * 12 / 14,
                    )
        # The HEST-style probe: spot-centred in the training run, and through the store.
        probe = {f"training: {k}": v for k, v in tr.get("probe", {}).items()}
        for var in ("2_5d", "2d"):
            f = work / "out" / f"{h}-{var}" / "probe" / "results_kfold.json"
            if f.exists():
                probe[f"store: vortex_{var}"] = json.loads(f.read_text())["pearson_mean"]
        res.setdefault("probe", {})[h] = probe
        ing = json.loads((work / "out" / f"{h}-2_5d" / "ingest.json").read_text())
        res.setdefault("ingest", {})[h] = {k: ing.get(k) for k in ("patches_total", "seconds", "patches_per_second")}
    names = [m[2] for m in methods]
    _bars(
        [(h, [res["prediction"][h][n]["pcc_all"] for n in names]) for h in holdouts]
        + [(f"{h} top50", [res["prediction"][h][n]["pcc_top50"] for n in names]) for h in holdouts],
        [SHORT[k] + ("2.5D" if v == "2_5d" else "2D") for v, k, _ in methods],
        out / "pcc.png",
        "Held-out section: mean PCC over 269 genes (left) and the 50 best (right)",
    )
    res["seconds"] = seconds
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    (out / "results.md").write_text(_markdown(res))
    return res


def _f(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def _markdown(res: dict) -> str:
    hs = res["holdouts"]
    lines = [
        "## Expression prediction on the held-out section",
        "",
        "| held out | method | PCC all | PCC top 50 | PCC markers | SSIM | Moran's I pred / meas | MSE |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    methods = [m for m in METHODS if m[2] in res.get("methods", [m[2] for m in METHODS[:4]])]
    names = [m[2] for m in methods] + ["mean expression"]
    for h in hs:
        for n in names:
            p = res["prediction"][h][n]
            mse = p.get("mse", p.get("mse_training_side"))
            lines.append(
                f"| {h} | {n} | {_f(p.get('pcc_all'))} | {_f(p.get('pcc_top50'))} | "
                f"{_f(p.get('pcc_markers'))} | {_f(p.get('ssim'))} | "
                f"{_f(p.get('moran_predicted'))} / {_f(p.get('moran_measured'))} | {_f(mse)} |"
            )
    lines += [
        "",
        "| method | mean PCC all | mean PCC top 50 | mean PCC markers | mean SSIM |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in names[:-1]:
        vals = [[res["prediction"][h][n][k] for h in hs] for k in ("pcc_all", "pcc_top50", "pcc_markers", "ssim")]
        lines.append(f"| {n} | " + " | ".join(_f(float(np.mean(v))) for v in vals) + " |")
    rows = sorted({k for h in hs for k in res.get("probe", {}).get(h, {})})
    if rows:
        lines += ["", "## HEST-style probe: PCA-256 + ridge to the 50 most variable genes, PCC on the held-out section",
                  "", "| features | " + " | ".join(hs) + " | mean |", "|---|" + "---:|" * (len(hs) + 1)]  # fmt: skip
        for r in rows:
            v = [res["probe"][h].get(r, np.nan) for h in hs]
            lines.append(f"| {r} | " + " | ".join(_f(x) for x in v) + f" | {_f(float(np.nanmean(v)))} |")
    lines += [
        "",
        "## Molecular queries: AUC of the heatmap at the held-out spots",
        "",
        "| held out | model | program | AUC | AUC of the measured program | marked / spots | "
        "median percentile marked / other |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for key, q in res["queries"].items():
        h, var, prog = key.split("-", 2)
        lines.append(
            f"| {h} | {var} | {prog} | {_f(q['auc'])} | {_f(q.get('auc_measured'))} | {q['marked']} / {q['spots']} | "
            f"{_f(q['median_percentile_marked'])} / {_f(q['median_percentile_other'])} |"
        )
    lines += [
        "",
        "Program clusters (expression-cluster labels whose mean program expression is above the all-spot mean):",
    ]
    for p, v in res["programs"].items():
        lines.append(f"- {p} ({', '.join(v['genes'])}): clusters {v['clusters']}; cluster means {v['cluster_means']}")
    lines += [
        "",
        "## Spatial domains (k-means on the predictor's hidden representation)",
        "",
        "| held out | model | k | ARI all sections (spots) | ARI held-out section | ARI vs C1 pathologist (via C2) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, d in res["domains"].items():
        h, var, k = key.split("-")
        lines.append(
            f"| {h} | {var} | {k[1:]} | {_f(d['ari_all_sections'])} ({d['spots_all']}) | "
            f"{_f(d['ari_holdout'])} | {_f(d.get('ari_c1_pathologist_via_c2'))} |"
        )
    lines += ["", "## Marker genes: PCC on the held-out section (mean over held-out sections)", "",
              "| gene | " + " | ".join(m[2] for m in methods) + " |", "|---|" + "---:|" * len(methods)]  # fmt: skip
    genes = list(res["prediction"][hs[0]][methods[0][2]]["marker_pcc"])
    for g in genes:
        cells = []
        for m in methods:
            v = [res["prediction"][h][m[2]]["marker_pcc"].get(g, np.nan) for h in hs]
            cells.append(_f(float(np.nanmean(v))) if np.isfinite(v).any() else "-")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    reg = res["volume"]
    lines += [
        "",
        f"Registration: tissue-mask Dice of neighbouring registered sections {reg['tissue_dice_neighbours']}.",
    ]
    if res.get("seconds") is not None:
        lines += ["", f"Wall time of `bash scripts/her2st-eval.sh`: {res['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"
