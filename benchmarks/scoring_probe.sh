#!/usr/bin/env bash
# Batch scoring at 10^6 and 10^7 rows: peak RSS and wall time of `mtlrec predict`
# streaming a Parquet folder into a Parquet file (issue 19, part 5).
# Needs the click logs benchmarks/streaming_probe.py writes (default data dir below).
#   bash benchmarks/scoring_probe.sh [DATA_DIR] [WORK_DIR]
set -euo pipefail
D=${1:-/tmp/mtlrec-stream-data}
W=${2:-/tmp/mtlrec-scoring}
mkdir -p "$W"
python - "$D" "$W" <<'PY'
import sys
sys.path.insert(0, "benchmarks")
import streaming_probe as sp
model = sp.build_model(0)
model.fit(f"{sys.argv[1]}/clicks-v1-seed0-1000000-f1000000-g125000", epochs=1,
          batch_size=2048, verbose=0)
model.save(f"{sys.argv[2]}/clickmodel", overwrite=True)
PY
for n in 1000000 10000000; do
  rm -f "$W/scores-$n.parquet"
  /usr/bin/time -f "rows=$n peak_rss_kib=%M wall_s=%e" mtlrec predict --model "$W/clickmodel" \
    --data "$D/clicks-v1-seed0-$n-f1000000-g125000" --output "$W/scores-$n.parquet" \
    --keep user_id --quiet
done
