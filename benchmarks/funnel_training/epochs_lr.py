"""Does CVR AUC (all) keep rising with more epochs or a higher lr (under-training)? Issue 17.

    python benchmarks/funnel_training/epochs_lr.py

Naive CVR, ESMM and MMoE in both forms, 3 seeds, at five (epochs, lr) settings.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run

for epochs, lr in [(3, 2e-3), (6, 2e-3), (12, 2e-3), (3, 6e-3), (3, 2e-2)]:
    run(f"epochs={epochs} lr={lr:g}", epochs=epochs, lr=lr)
