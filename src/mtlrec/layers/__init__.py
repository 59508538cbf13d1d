"""Building blocks shared by the architectures."""

from .banks import BankLinear, BankMLP, activation
from .embedding import InputLayer
from .gates import GateBank
from .towers import Towers

__all__ = ["BankLinear", "BankMLP", "GateBank", "InputLayer", "Towers", "activation"]
