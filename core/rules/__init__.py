"""The rule language: compile rule files into fast evaluators, and the catalogue that indexes them."""

from .batch import evaluate_all
from .catalogue import Catalogue, load_catalogue
from .compiler import compile_rule
from .errors import RuleValidationError, ValidationIssue
from .model import CompiledRule, ItemResult, Reason, RuleOutcome

__all__ = [
    "Catalogue",
    "CompiledRule",
    "ItemResult",
    "Reason",
    "RuleOutcome",
    "RuleValidationError",
    "ValidationIssue",
    "compile_rule",
    "evaluate_all",
    "load_catalogue",
]
