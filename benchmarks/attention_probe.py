"""Does target attention over the history learn what mean pooling does not? The entity
generator's click task, MMoE, with the history mean-pooled or attended (DIN) against
the candidate item, early stopping as in ``mtlrec benchmark entities``.

    python benchmarks/attention_probe.py [--seeds 2]

Prints the test click AUC of the ground truth's parts (the true logit, the user and
item effects alone, the interaction alone), then the test click AUC and GAUC (per user)
of each pooling and seed.
"""

from __future__ import annotations

import argparse
import dataclasses

import mtlrec
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.experiments.entities import load_entities
from mtlrec.features import SequenceFeature
from mtlrec.metrics import roc_auc
from mtlrec.training import EarlyStopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    data = load_entities()
    test, truth = data.test, {}
    truth["the true logit"] = test["click_logit_true"]
    truth["user + item effects"] = test["user_effect_true"] + test["item_effect_true"]
    truth["the interaction"] = test["interaction_true"]
    for name, score in truth.items():
        auc = roc_auc(test["click"].to_numpy(), score.to_numpy())
        print(f"ground truth, {name}: click AUC {auc:.4f}")
    cut = round(len(data.train) * 0.9)  # the last 10 % for early stopping, as the benchmark
    train, validation = data.train.iloc[:cut], data.train.iloc[cut:]
    for pooling in ("mean", "attention"):
        target = "item_id" if pooling == "attention" else None
        features = [
            dataclasses.replace(f, pooling=pooling, target=target)
            if isinstance(f, SequenceFeature)
            else f
            for f in data.features
        ]
        for seed in range(args.seeds):
            model = mtlrec.MMoE(features, data.tasks, seed=seed, **REFERENCE_CONFIGS["mmoe"])
            model.fit(
                train,
                validation,
                epochs=10,
                early_stopping=EarlyStopping("click", "auc", patience=1),
                verbose=0,
            )
            click = model.evaluate(data.test, group="user_id")["click"]
            print(
                f"{pooling:9s} seed {seed}: click AUC {click['auc']:.4f} GAUC "
                f"{click['gauc']:.4f} ({len(model.history_)} epochs, {model.history_[-1]['step']})"
            )


if __name__ == "__main__":
    main()
