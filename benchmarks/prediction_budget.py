"""What the 5x prediction target asks of the machine, from a speed run's figures.

    python benchmarks/prediction_budget.py [speed.json]   (default docs/results/speed.json)

For each mtlrec model of the run (batch-256 rows): the time 5x the faster peer's predict
rows/s allows for the test rows, less mtlrec's preprocessing (raw-row minus ColumnBatch
prediction time), is what the network may take. Dividing the FLOPs it executes (the
analytic forward FLOPs less the first layers that folded tables replace) by that time
gives the rate it would need, as a share of the run's measured fp32 matmul ceiling.
"""

import json
import sys
from pathlib import Path

from _flops import flops_per_sample

import mtlrec
from mtlrec.datasets import adult_features, adult_tasks, load_adult
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS
from mtlrec.layers.folding import FoldedInput

TARGET = 5.0
MTLREC_LIBRARIES = ("mtlrec", "baseline")  # "baseline": another checkout, not a peer
path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/speed.json")
records = [r for r in json.loads(path.read_text()) if r["batch_size"] == 256]
train, _ = load_adult()
print(f"{path}: target {TARGET:g}x the faster peer's predict rows/s")
print(
    "| model | executed kFLOP/row | faster peer rows/s | mtlrec ms (raw / ColumnBatch) "
    "| budget for the network ms | needed GFLOP/s | % of ceiling | now % of ceiling |"
)
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for ours in (r for r in records if r["library"] == "mtlrec"):
    name, rows = ours["model"], ours["test_rows"]
    peers = [r for r in records if r["model"] == name and r["library"] not in MTLREC_LIBRARIES]
    if not peers:
        continue
    ceiling = ours["predict_gflops"] / ours["ceiling_percent_predict"] * 100
    model = mtlrec.create_model(name, adult_features(), adult_tasks(), **REFERENCE_CONFIGS[name])
    model.preprocessor.fit(train)
    network = model.build()
    forward = flops_per_sample(network)["forward"]
    readers = network.input_readers()
    if FoldedInput.build(network.embedding, readers, rows) is not None:
        forward -= 2 * sum(r.in_features * r.width for r in readers)
    peer = max(r["predict_rows_per_second"] for r in peers)
    raw = rows / ours["predict_rows_per_second"]
    network_time = rows / ours["predict_rows_per_second_pretransformed"]
    budget = rows / (TARGET * peer) - (raw - network_time)
    needed = forward * rows / budget / 1e9
    now = forward * rows / network_time / 1e9
    print(
        f"| {name} | {forward / 1e3:.1f} | {peer:,.0f} | {raw * 1e3:.1f} / "
        f"{network_time * 1e3:.1f} | {budget * 1e3:.1f} | {needed:.1f} | "
        f"{100 * needed / ceiling:.0f} | {100 * now / ceiling:.0f} |"
    )
print(f"ceiling: {ceiling:.1f} GFLOP/s (the run's best fp32 matmul median)")
