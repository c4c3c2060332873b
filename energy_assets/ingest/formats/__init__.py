"""Input formats as declarative mappings from source columns to platform fields.

Each format is a YAML file: the ones shipped beside this module, plus any the user puts in
`$ENERGY_HOME/formats/` (a user file with the same `name` replaces the shipped one). A format is
detected from the header: every required field must match a column, and the format matching the
most fields wins. Header names match case-, space- and underscore-insensitively.

Kinds: `readings` (interval values: wide, one column per channel, or long, with a channel column),
`meters` (metadata per meter) and `weather` (observations per site).

A format only maps columns. Which values a channel may hold follows from its name, the same for
every format (`parsing.BOUNDS`), so a new vendor layout needs no value rules of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from energy_assets.ingest.rejections import Rejected

SHIPPED_DIR = Path(__file__).resolve().parent
KINDS = ("readings", "meters", "weather")
ATTRIBUTE = "attr:"  # field-name prefix of free attributes
METER_FIELDS = ("name", "feeder", "customer_id", "multiplier", "site_id", "timezone", "tariff")
"""Meter metadata fields a `meters` format may map (the columns of raw.meters)."""


def normalize_header(name: str) -> str:
    """`" KW_Del "` and `"kW del"` both become `"kwdel"`."""
    return re.sub(r"[\s_]+", "", name.replace("\ufeff", "").strip().lower())


@dataclass(frozen=True)
class Format:
    name: str
    kind: str
    fields: dict[str, tuple[str, ...]]
    """Platform field -> accepted source column names."""
    channels: tuple[str, ...] = ()
    """Wide readings: the channel fields. Weather: the variable fields."""
    channel_codes: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    default_interval_minutes: int = 15
    default_site: str | None = None
    source: Path | None = None

    @property
    def long(self) -> bool:
        return "channel" in self.fields

    @classmethod
    def from_yaml(cls, path: Path) -> Format:
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls._from_spec(spec, path)
        except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
            raise ValueError(f"format file {path} is not valid: {exc!r}") from exc

    @classmethod
    def _from_spec(cls, spec: dict, path: Path) -> Format:
        kind = spec["kind"]
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        fields: dict[str, list[str]] = {}
        channels: tuple[str, ...] = ()
        for key in ("timestamp", "meter", "site", "value"):
            if key in spec:
                fields[key] = spec[key]
        if kind == "readings":
            if "channel_column" in spec:
                fields["channel"] = spec["channel_column"]
                if "unit_column" in spec:
                    fields["unit"] = spec["unit_column"]
            else:
                channels = tuple(spec["channels"])
                fields.update(spec["channels"])
            required = ("timestamp", *spec.get("required", channels[:1]))
        elif kind == "weather":
            channels = tuple(spec["variables"])
            fields.update(spec["variables"])
            required = ("timestamp", *spec.get("required", ()))
        else:
            fields.update(spec["columns"])
            required = tuple(spec.get("required", ()))
        attributes = spec.get("attributes", {})
        if isinstance(attributes, list):  # a list of column names, each its own attribute
            attributes = {re.sub(r"\W+", "_", name.strip().lower()): [name] for name in attributes}
        fields.update({ATTRIBUTE + key: names for key, names in attributes.items()})
        return cls(
            name=spec["name"],
            kind=kind,
            fields={key: tuple(_as_list(names)) for key, names in fields.items()},
            channels=channels,
            channel_codes={str(k): v for k, v in spec.get("channel_codes", {}).items()},
            required=required,
            default_interval_minutes=int(spec.get("default_interval_minutes", 15)),
            default_site=spec.get("default_site"),
            source=path,
        )


def _as_list(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


@dataclass(frozen=True)
class Match:
    """A format matched to one file's header: platform field -> the file's column name."""

    format: Format
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [key for key in self.format.required if key not in self.columns]

    @property
    def attributes(self) -> dict[str, str]:
        """Attribute name -> column, for the attributes this file carries."""
        return {
            k.removeprefix(ATTRIBUTE): c for k, c in self.columns.items() if k.startswith(ATTRIBUTE)
        }


def load_formats(user_dir: Path | None = None) -> list[Format]:
    by_name: dict[str, Format] = {}
    dirs = [SHIPPED_DIR] + ([user_dir] if user_dir and user_dir.is_dir() else [])
    for directory in dirs:
        for path in sorted(directory.glob("*.y*ml")):
            fmt = Format.from_yaml(path)
            by_name[fmt.name] = fmt
    return list(by_name.values())


def map_header(header: list[str], fmt: Format) -> Match:
    """Map `fmt`'s fields onto `header` (the match may miss required fields)."""
    by_norm = {normalize_header(col): col for col in header}
    columns = {}
    for key, names in fmt.fields.items():
        for name in names:
            col = by_norm.get(normalize_header(name))
            if col is not None:
                columns[key] = col
                break
    return Match(fmt, columns)


def match_header(header: list[str], fmt: Format) -> Match | None:
    """Map `fmt`'s fields onto `header`, or None when a required field has no column."""
    match = map_header(header, fmt)
    return None if match.missing else match


def detect_format(header: list[str], formats: list[Format]) -> Match | None:
    """The format whose mapping covers the most of this header, among those that fit at all."""
    matches = [m for m in (match_header(header, fmt) for fmt in formats) if m is not None]
    return max(matches, key=lambda m: len(m.columns), default=None)


def require_format(header: list[str], formats: list[Format], file_name: str) -> Match:
    """`detect_format`, or the reason no format fits: a near miss names its missing columns."""
    match = detect_format(header, formats)
    if match is not None:
        return match
    partial = (map_header(header, fmt) for fmt in formats)
    near = [m for m in partial if len(m.columns) >= max(2, len(m.missing))]
    if near:
        best = max(near, key=lambda m: len(m.columns))
        wanted = {key: best.format.fields.get(key, (key,))[0] for key in best.missing}
        raise Rejected(
            "missing_column",
            f"{file_name} looks like a {best.format.name} file but has no column for "
            + ", ".join(f"{key} (e.g. {name!r})" for key, name in wanted.items()),
            [1],
            ",".join(header),
        )
    raise Rejected(
        "unknown_header",
        f"no known format matches the header of {file_name}: {header}; add a mapping file to "
        "$ENERGY_HOME/formats/ if this is a new vendor layout",
        [1],
        ",".join(header),
    )
