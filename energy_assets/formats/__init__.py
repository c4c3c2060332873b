"""Input formats as declarative mappings from source columns to platform fields.

Each format is a YAML file: the ones shipped beside this module, plus any the user puts in
`$ENERGY_HOME/formats/` (a user file with the same `name` replaces the shipped one). A format is
detected from the header: every required field must match a column, and the format matching the
most fields wins. Header names match case-, space- and underscore-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SHIPPED_DIR = Path(__file__).resolve().parent
KINDS = ("readings", "meters")


def normalize_header(name: str) -> str:
    """`" KW_Del "` and `"kW del"` both become `"kwdel"`."""
    return re.sub(r"[\s_]+", "", name.replace("\ufeff", "").strip().lower())


@dataclass(frozen=True)
class Format:
    name: str
    kind: str
    fields: dict[str, tuple[str, ...]]
    """Platform field -> accepted source column names (for readings: timestamp, meter, channels)."""
    channels: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    default_interval_minutes: int = 15
    source: Path | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> Format:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            kind = spec["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
            if kind == "readings":
                fields = {"timestamp": spec["timestamp"], **spec["channels"]}
                if "meter" in spec:
                    fields["meter"] = spec["meter"]
                channels = tuple(spec["channels"])
                required = ("timestamp", *spec.get("required", channels[:1]))
            else:
                fields = dict(spec["columns"])
                channels = ()
                required = tuple(spec.get("required", ()))
            return cls(
                name=spec["name"],
                kind=kind,
                fields={key: tuple(_as_list(names)) for key, names in fields.items()},
                channels=channels,
                required=required,
                default_interval_minutes=int(spec.get("default_interval_minutes", 15)),
                source=path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"format file {path} is not valid: {exc}") from exc


def _as_list(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


@dataclass(frozen=True)
class Match:
    """A format matched to one file's header: platform field -> the file's column name."""

    format: Format
    columns: dict[str, str] = field(default_factory=dict)


def load_formats(user_dir: Path | None = None) -> list[Format]:
    by_name: dict[str, Format] = {}
    dirs = [SHIPPED_DIR] + ([user_dir] if user_dir and user_dir.is_dir() else [])
    for directory in dirs:
        for path in sorted(directory.glob("*.y*ml")):
            fmt = Format.from_yaml(path)
            by_name[fmt.name] = fmt
    return list(by_name.values())


def match_header(header: list[str], fmt: Format) -> Match | None:
    """Map `fmt`'s fields onto `header`, or None when a required field has no column."""
    by_norm = {normalize_header(col): col for col in header}
    columns = {}
    for key, names in fmt.fields.items():
        for name in names:
            col = by_norm.get(normalize_header(name))
            if col is not None:
                columns[key] = col
                break
    if any(key not in columns for key in fmt.required):
        return None
    return Match(fmt, columns)


def detect_format(header: list[str], formats: list[Format]) -> Match | None:
    """The format whose mapping covers the most of this header, among those that fit at all."""
    matches = [m for m in (match_header(header, fmt) for fmt in formats) if m is not None]
    return max(matches, key=lambda m: len(m.columns), default=None)
