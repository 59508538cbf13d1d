"""Loss terms and their composition into the training objective (see ``base``)."""

from .base import Objective, Term
from .l2 import L2Dense, L2Embedding, l2_terms

__all__ = ["L2Dense", "L2Embedding", "Objective", "Term", "l2_terms"]
