"""What the CVR tower learns over the epochs, by position (issue 17).

    python benchmarks/funnel_training/position_probe.py [seed ...]

Position has no effect on the true CVR, only on clicks. For ESMM, MMoE entire space and
MMoE conditional, after 1 to 12 epochs on 40k rows: CVR AUC (all), the mean pCVR by
position, its calibration on clicked train / test rows, the joint's mean on training rows
and the mean pCTR on clicked training rows. Seeds default to 0.
"""

import sys

from mtlrec.datasets.funnel import funnel_features, synthetic_funnel
from mtlrec.estimator import MultiTaskModel
from mtlrec.experiments.funnel import FUNNEL_MODELS
from mtlrec.metrics import roc_auc
from mtlrec.tasks import Task

for seed in map(int, sys.argv[1:] or ["0"]):
    frame = synthetic_funnel(140_000, seed=seed)
    train, test = frame.iloc[:40_000], frame.iloc[40_000:]
    clk_tr = train.click.to_numpy() == 1
    clk_te = test.click.to_numpy() == 1
    pos = test.position.to_numpy()
    print(
        f"seed {seed}: true CVR by position (test, all rows): "
        f"{[round(test.true_cvr[pos == k].mean(), 3) for k in (1, 4, 7, 10)]}; "
        f"train joint rate {(train.click * train.conversion.fillna(0)).mean():.4f}"
    )
    for name in ["esmm", "mmoe_entire_space", "mmoe_conditional"]:
        s = FUNNEL_MODELS[name]
        tasks = [Task("click"), Task("conversion", after="click", **s.funnel)]
        for epochs in (1, 2, 3, 6, 12):
            m = MultiTaskModel(
                funnel_features(8), tasks, architecture=s.architecture, seed=seed, **s.params
            )
            m.fit(train, epochs=epochs, batch_size=256, lr=2e-3, verbose=0, threads=1)
            ptr, pte = m.predict(train, threads=1), m.predict(test, threads=1)
            joint = tasks[1].joint_name
            q = pte["conversion"]
            auc = roc_auc(test.potential_conversion.to_numpy(), q)
            by_pos = [round(float(q[pos == k].mean()), 4) for k in (1, 4, 7, 10)]
            print(
                f"  {name:18s} ep {epochs:2d}: AUC all {auc:.4f}"
                f"  pCVR by position 1/4/7/10 {by_pos}"
                f"  pCVR clicked train {ptr['conversion'][clk_tr].mean():.4f}"
                f" test {q[clk_te].mean():.4f}"
                f"  joint mean train {ptr[joint].mean():.4f}"
                f"  pCTR mean clicked-train {ptr['click'][clk_tr].mean():.3f}"
            )
