"""Building blocks shared by the architectures, each with its fast-path rule.

A block owns its forward and (next to it) the rule that computes the same forward
without autograd and its backward by hand (:mod:`mtlrec.layers.tape`).
"""

from .banks import BankLinear, BankMLP, activation
from .embedding import InputLayer
from .gates import GateBank, mix
from .product import product_logit, ratio_logit
from .tape import Declined, Tape, Traced, TracedBatch
from .towers import Towers

__all__ = [
    "BankLinear",
    "BankMLP",
    "Declined",
    "GateBank",
    "InputLayer",
    "Tape",
    "Towers",
    "Traced",
    "TracedBatch",
    "activation",
    "mix",
    "product_logit",
    "ratio_logit",
]
