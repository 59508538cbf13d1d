"""Shared-Bottom on the entity generator, one epoch at a time: test and training click AUC
and test watch RMSE after each epoch (how fast the ids overfit without early stopping).

    python benchmarks/entity_epochs_probe.py 4 none

The second argument lists features to leave out, comma-separated ("none" keeps all).
"""

import sys

import mtlrec
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.experiments.entities import load_entities

d = load_entities()
feats = [f for f in d.features if f.name not in sys.argv[2].split(",")]
m = mtlrec.SharedBottom(feats, d.tasks, seed=0, **REFERENCE_CONFIGS["shared_bottom"])
for e in range(int(sys.argv[1])):
    m.fit(d.train, epochs=1, verbose=0, warm_start=True)
    r = m.evaluate(d.test)
    tr = m.evaluate(d.train.head(20000))
    print(
        e + 1,
        "test click auc",
        round(r["click"]["auc"], 4),
        "watch rmse",
        round(r["watch"]["rmse"], 4),
        "train auc",
        round(tr["click"]["auc"], 4),
    )
