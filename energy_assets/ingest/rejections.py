"""Why a file is refused: a rule, a message a person can act on, the lines, a sample."""

from __future__ import annotations


class Rejected(Exception):
    """The file breaks a rule; it goes to quarantine with this explanation."""

    def __init__(
        self, rule: str, message: str, lines: list[int] | None = None, sample: str = ""
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.lines = lines or []
        self.sample = sample

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "message": self.message,
            "lines": self.lines,
            "sample": self.sample,
        }
