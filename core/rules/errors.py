"""Validation errors of the rule language, each tied to a file position an author can jump to."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuleValidationError", "ValidationIssue"]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem in one rule file; ``line``/``column`` are 1-based (0 when the position is unknown)."""

    file: str
    line: int
    column: int
    message: str
    code: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message,
                "code": self.code}


class RuleValidationError(Exception):
    """A rule (or a catalogue) failed validation; ``errors`` lists every problem found, not only the first."""

    def __init__(self, errors: list[ValidationIssue]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.column))
        super().__init__("\n".join(str(e) for e in self.errors) or "invalid rule")
