"""Reference values for the spot preprocessing test (tests/spots_tests.rs), from scanpy.

Reads one her2st section (the spots its selection table marks as under tissue), runs
scanpy's QC metrics, normalize_total(1e4) + log1p and highly_variable_genes
(flavor="seurat") in float64, and writes the resulting *numbers* (not the data) to
tests/reference/expression_her2st_C1.json.

    python -m venv /tmp/scvenv && /tmp/scvenv/bin/pip install scanpy
    /tmp/scvenv/bin/python tests/reference/make_expression_reference.py ../shared/data/her2st C1
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp


def main() -> None:
    root, name = Path(sys.argv[1]), sys.argv[2]
    with gzip.open(root / "counts" / f"{name}.tsv.gz", "rt") as f:
        df = pd.read_csv(f, sep="\t", index_col=0)
    sel = pd.read_csv(root / "spots" / f"{name}_selection.tsv", sep="\t")
    keys = {
        f"{round(x)}x{round(y)}"
        for x, y, s in zip(sel.x, sel.y, sel.selected, strict=True)
        if s == 1
    }
    df = df.loc[[i for i in df.index if i in keys]]
    adata = ad.AnnData(sp.csr_matrix(df.to_numpy(np.float64)))
    adata.obs_names = [str(i) for i in df.index]
    adata.var_names = [str(g) for g in df.columns]
    adata.var["mt"] = adata.var_names.str.upper().str.startswith("MT-")
    sc.pp.calculate_qc_metrics(
        adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True
    )
    few = adata.obs["n_genes_by_counts"].to_numpy() < 25
    high = adata.obs["pct_counts_mt"].to_numpy() >= 20.0
    qc = {
        "spots_in": int(adata.n_obs),
        "kept": int((~few & ~high).sum()),
        "removed_min_genes": int(few.sum()),
        "removed_mito": int(high.sum()),
        "removed_both": int((few & high).sum()),
        "n_genes": [int(v) for v in adata.obs["n_genes_by_counts"]],
        "pct_counts_mt": [float(v) for v in adata.obs["pct_counts_mt"]],
    }
    adata = adata[~few & ~high].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    x = adata.X.toarray()
    rng = np.random.default_rng(0)
    nz = np.argwhere(x > 0)
    picks = nz[rng.choice(len(nz), 300, replace=False)]
    zeros = np.argwhere(x == 0)
    picks = np.vstack([picks, zeros[rng.choice(len(zeros), 50, replace=False)]])
    norm = {
        "spots": [adata.obs_names[i] for i in picks[:, 0]],
        "genes": [adata.var_names[j] for j in picks[:, 1]],
        "values": [float(x[i, j]) for i, j in picks],
        "row_sums": [float(v) for v in x.sum(1)],
    }
    hvg = {}
    for n in (300, 1200):
        df_h = sc.pp.highly_variable_genes(
            adata, flavor="seurat", n_top_genes=n, inplace=False
        )
        hvg[str(n)] = sorted(
            adata.var_names[df_h["highly_variable"].to_numpy()].tolist()
        )
    out = {
        "source": f"her2st {name}",
        "scanpy": sc.__version__,
        "settings": {
            "min_genes": 25,
            "max_mito_percent": 20.0,
            "target_sum": 1e4,
            "dtype": "float64",
        },
        "qc": qc,
        "normalized": norm,
        "hvg": hvg,
    }
    dest = Path(__file__).with_name(f"expression_her2st_{name}.json")
    dest.write_text(json.dumps(out, indent=0) + "\n")
    print(
        f"wrote {dest}: {qc['kept']} of {qc['spots_in']} spots kept, hvg {[len(v) for v in hvg.values()]}"
    )


if __name__ == "__main__":
    main()
