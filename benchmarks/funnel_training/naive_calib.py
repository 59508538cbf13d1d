"""Naive CVR's mean prediction per epoch, with and without the priors (issues 13 and 17).

    python benchmarks/funnel_training/naive_calib.py

Why naive_cvr seed 2 (40k rows) predicted a mean pCVR of 0.228 on clicked rows: trains it
from the old start (output bias 0, i.e. pCVR ~0.5: start_at_priors disabled) and from the
current one (bias at the label prior), per seed (0-2) and per number of epochs (0 = the
untrained start), and prints the mean predictions on clicked train / clicked test / all
test rows and the quantiles on clicked test rows.
"""

import numpy as np

from mtlrec.datasets.funnel import funnel_features, synthetic_funnel
from mtlrec.estimator import MultiTaskModel
from mtlrec.experiments.funnel import FUNNEL_MODELS
from mtlrec.models.base import MultiTaskNetwork
from mtlrec.tasks import Task

spec = FUNNEL_MODELS["naive_cvr"]
original = MultiTaskNetwork.start_at_priors


def fit(clicked, seed, epochs, priors, lr=2e-3):
    """A naive CVR model fitted on the clicked rows; priors=False starts its bias at 0."""
    MultiTaskNetwork.start_at_priors = original if priors else (lambda self, p: None)
    try:
        m = MultiTaskModel(
            funnel_features(8),
            [Task("conversion")],
            architecture="single_task",
            seed=seed,
            **spec.params,
        )
        return m.fit(clicked, epochs=epochs, batch_size=256, lr=lr, verbose=0, threads=1)
    finally:
        MultiTaskNetwork.start_at_priors = original


for seed in range(3):
    frame = synthetic_funnel(140_000, seed=seed)
    train, test = frame.iloc[:40_000], frame.iloc[40_000:]
    clicked = train[train.click == 1]
    tclk = test.click.to_numpy() == 1
    print(
        f"seed {seed}: {len(clicked)} clicked training rows,"
        f" {int(clicked.conversion.sum())} conversions,"
        f" {int(np.ceil(len(clicked) / 256))} steps/epoch"
    )
    for priors in (False, True):
        for epochs in (0, 1, 2, 3, 6, 12):
            if epochs:
                m = fit(clicked, seed, epochs, priors)
            else:  # the untrained start: one epoch at lr 1e-12
                m = fit(clicked, seed, 1, priors, lr=1e-12)
            p_tr = m.predict(clicked, threads=1)["conversion"]
            p_te = m.predict(test, threads=1)["conversion"]
            q = np.quantile(p_te[tclk], [0.1, 0.5, 0.9])
            print(
                f"  priors={priors!s:5} epochs={epochs:2d}:"
                f" mean pCVR train-clicked {p_tr.mean():.4f}"
                f" (observed {clicked.conversion.mean():.4f}),"
                f" test-clicked {p_te[tclk].mean():.4f},"
                f" test-all {p_te.mean():.4f};"
                f" test-clicked quantiles 10/50/90% {np.round(q, 4)}"
            )
