"""Per-customer financial features: the registry of what rules may read, and the fold that computes them."""

from core.features.folding import FoldError, FoldResult, apply_balance, fold
from core.features.state import CustomerState, StateDecodeError
from core.features.vector import changed_features, features_at

__all__ = [
    "CustomerState", "FoldError", "FoldResult", "StateDecodeError", "apply_balance", "changed_features",
    "features_at", "fold",
]
