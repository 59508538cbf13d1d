"""The lag of the entire-space CVR tower, as slopes on the dense inputs (issue 17).

    python benchmarks/funnel_training/slope_probe.py [seed] [models]

After 1, 2, 3 and 6 epochs: the slopes of the predicted CTR and CVR logits on each dense
input over all test rows (least squares on the four dense inputs), against the truth's
(clickbait: CTR +1.5, CVR -1.5; price: CVR -0.6; activity: CTR +0.4, CVR +0.3), and CVR
AUC (all). seed defaults to 0; models is a comma-separated list (default: ESMM, MMoE
entire space, MMoE conditional).
"""

import sys

import numpy as np

from mtlrec.datasets.funnel import FUNNEL_DENSE, funnel_features, synthetic_funnel
from mtlrec.estimator import MultiTaskModel
from mtlrec.experiments.funnel import FUNNEL_MODELS
from mtlrec.metrics import roc_auc
from mtlrec.tasks import Task


def logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def slopes(y, X):
    """Least-squares coefficients of y on the columns of X (with an intercept, dropped)."""
    A = np.c_[X, np.ones(len(X))]
    return np.linalg.lstsq(A, y, rcond=None)[0][:-1]


seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
models = (
    sys.argv[2].split(",")
    if len(sys.argv) > 2
    else ["esmm", "mmoe_entire_space", "mmoe_conditional"]
)
frame = synthetic_funnel(140_000, seed=seed)
train, test = frame.iloc[:40_000], frame.iloc[40_000:]
X = test[list(FUNNEL_DENSE)].to_numpy(np.float64)
true_ctr = slopes(logit(test.true_ctr.to_numpy()), X)
true_cvr = slopes(logit(test.true_cvr.to_numpy()), X)
print(f"seed {seed}; columns {FUNNEL_DENSE}")
print(f"  truth CTR slopes {np.round(true_ctr, 2)}  CVR slopes {np.round(true_cvr, 2)}")
for name in models:
    s = FUNNEL_MODELS[name]
    tasks = [Task("click"), Task("conversion", after="click", **s.funnel)]
    for epochs in (1, 2, 3, 6):
        m = MultiTaskModel(
            funnel_features(8), tasks, architecture=s.architecture, seed=seed, **s.params
        )
        m.fit(train, epochs=epochs, batch_size=256, lr=2e-3, verbose=0, threads=1)
        p = m.predict(test, threads=1)
        auc = roc_auc(test.potential_conversion.to_numpy(), p["conversion"])
        print(
            f"  {name:18s} ep {epochs}: CTR slopes {np.round(slopes(logit(p['click']), X), 2)}"
            f"  CVR slopes {np.round(slopes(logit(p['conversion']), X), 2)}"
            f"  CVR AUC all {auc:.4f}"
        )
