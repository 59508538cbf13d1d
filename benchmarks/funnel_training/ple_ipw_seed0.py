"""Aside to issue 17: ple_ipw seed 0 has CVR AUC 0.50; are its CVR predictions constant?

    python benchmarks/funnel_training/ple_ipw_seed0.py

Default benchmark size (40k training rows), 1 to 3 epochs: the spread of the CVR predictions
on the test rows and the conversion loss per epoch.
"""

import numpy as np

from mtlrec.datasets.funnel import funnel_features, synthetic_funnel
from mtlrec.estimator import MultiTaskModel
from mtlrec.experiments.funnel import FUNNEL_MODELS
from mtlrec.tasks import Task

frame = synthetic_funnel(140_000, seed=0)
train, test = frame.iloc[:40_000], frame.iloc[40_000:]
s = FUNNEL_MODELS["ple_ipw"]
for epochs in (1, 2, 3):
    m = MultiTaskModel(
        funnel_features(8),
        [Task("click"), Task("conversion", after="click", **s.funnel)],
        architecture="ple",
        seed=0,
        **s.params,
    ).fit(train, epochs=epochs, batch_size=256, lr=2e-3, verbose=0, threads=1)
    q = m.predict(test, threads=1)["conversion"]
    losses = [round(h["task_loss"]["conversion"], 4) for h in m.history_]
    print(
        f"epochs {epochs}: pCVR min {q.min():.5f} max {q.max():.5f} std {q.std():.2e}"
        f" unique {len(np.unique(q))}; history conversion loss {losses}"
    )
