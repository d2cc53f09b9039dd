import sys

import numpy as np

import vortexdb

out = sys.argv[1] if len(sys.argv) > 1 else "vortex-python-demo"
ph = vortexdb.phantom(f"{out}/phantom", seed=7)  # held out from the default model
with vortexdb.create(f"{out}/store") as db:
    db.add_model("default")
    db.ingest_volume("ph7", np.load(ph["volume"]), progress=False)  # an array (copied first)
    db.ingest_spots("ph7", ph["spots"])  # or an AnnData object
    q = db.query_genes("TUM01")
    heat = q.heatmap["ph7"]  # 3D float32, NaN outside the patches
    pred = db.predict("ph7")  # AnnData: patches x predicted genes, obsm["hidden"]
    dom = db.domains("ph7", k=4, segmentation=ph["labels"])
    ev = db.evaluate("ph7")["report"]
print(q.top.head(3).to_string(index=False))
print(f"heatmap {heat.shape} max {np.nanmax(heat):.3f}; predicted {pred.shape}; ARI {dom.ari:.3f}")
print(f"predicted vs measured: PCC {ev['pcc_all']:.3f} over {ev['genes']} genes at {ev['spots']} spots")
