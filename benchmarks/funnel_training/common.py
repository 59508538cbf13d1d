"""Shared helpers: run the funnel benchmark on a few models and summarise."""

import time

import numpy as np

from mtlrec.experiments.funnel import run_funnel_benchmark

MODELS = ["naive_cvr", "esmm", "mmoe_conditional", "mmoe_entire_space"]
KEYS = [
    ("click", "auc", "ctrAUC"),
    ("conversion", "cvr_auc_clicked", "cvrAUCclk"),
    ("conversion", "cvr_auc_all", "cvrAUCall"),
    ("click_conversion", "auc", "ctcvrAUC"),
    ("conversion", "cvr_mean_pred_clicked", "pCVRclk"),
    ("conversion", "cvr_mean_pred_all", "pCVRall"),
]


def table(records, label=""):
    out = []
    models = list(dict.fromkeys(r["model"] for r in records))
    for m in models:
        cells = []
        for task, key, name in KEYS:
            v = [r[key] for r in records if r["model"] == m and r["task"] == task and key in r]
            cells.append(f"{name} {np.mean(v):.4f}±{np.std(v, ddof=1) if len(v) > 1 else 0:.4f}")
        per_seed = [
            round(r["cvr_auc_all"], 3)
            for r in records
            if r["model"] == m and r["task"] == "conversion"
        ]
        out.append(f"{label:28s} {m:20s} " + "  ".join(cells) + f"  all/seed {per_seed}")
    return "\n".join(out)


def run(label, models=MODELS, seeds=3, **kw):
    t = time.time()
    recs = run_funnel_benchmark(
        models=models, seeds=seeds, verbose=0, warmup=False, threads=1, **kw
    )
    print(table(recs, label), f"  [{time.time() - t:.0f}s]", flush=True)
    return recs
