"""Loss terms and their composition into the training objective (see ``base``)."""

from .base import Normalisers, Objective
from .l2 import L2Dense, L2Embedding, l2_terms
from .terms import OutputTerm, Term

__all__ = ["L2Dense", "L2Embedding", "Normalisers", "Objective", "OutputTerm", "Term", "l2_terms"]
