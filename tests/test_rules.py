"""The one list of rules, `rejections.RULES`: every rule a file is refused by is in it, every
refusing rule in it is raised somewhere, and the README's table gives each its verdict."""

from __future__ import annotations

import ast
from pathlib import Path

from energy_assets.ingest.parsing import ANY_VALUE, BOUNDS, MAX_MULTIPLIER
from energy_assets.ingest.readers import (
    HEAD_BYTES,
    LINE_BYTES,
    SHARED_STRINGS_BYTES,
    WORKBOOK_RATIO,
    WORKBOOK_RATIO_FLOOR,
)
from energy_assets.ingest.rejections import RULES

PACKAGE = Path(__file__).resolve().parents[1] / "energy_assets"
VERDICT = {True: "refuses the file", False: "flags rows"}


def raised() -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """Rules named where files are refused, `Rejected(rule, ...)` and `reject_first(..., rule,
    ...)`, with their places; and the arguments that are not a literal name, with their file."""
    literal: dict[str, list[str]] = {}
    other: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", None))
            position = {"Rejected": 0, "reject_first": 3}.get(called)
            if position is None:
                continue
            keyword = [k.value for k in node.keywords if k.arg == "rule"]
            rule = keyword[0] if keyword else node.args[position]
            if isinstance(rule, ast.Constant):
                literal.setdefault(rule.value, []).append(f"{where}:{node.lineno}")
            else:
                other.add((where, ast.unparse(rule)))
    return literal, other


def test_every_rule_a_file_is_refused_by_is_listed():
    literal, other = raised()
    listed = {rule.name for rule in RULES if rule.refuses}
    assert {name: places for name, places in literal.items() if name not in listed} == {}
    # reject_first hands its caller's rule on; every other rule is written out where it is raised
    assert other == {("ingest/parsing.py", "rule")}


def test_every_refusing_rule_listed_is_raised_somewhere():
    literal, _ = raised()
    assert [rule.name for rule in RULES if rule.refuses and rule.name not in literal] == []


def test_rules_are_listed_once():
    names = [rule.name for rule in RULES]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


def short(number: float) -> str:
    """1e7, as the meanings write it."""
    return f"{number:.0e}".replace("e+0", "e").replace("e+", "e")


def test_meanings_quote_the_bounds_in_force():
    meaning = {rule.name: rule.meaning for rule in RULES}
    kib, mib = 1024, 1024 * 1024
    quoted = {
        "header_too_long": [f"{HEAD_BYTES // kib} KiB"],
        "line_too_long": [f"{LINE_BYTES // mib} MiB"],
        "workbook_bomb": [
            f"over {WORKBOOK_RATIO_FLOOR // mib} MiB",
            f"{WORKBOOK_RATIO} times",
            f"{SHARED_STRINGS_BYTES // mib} MiB",
        ],
        "implausible_value": [short(b.limit) for b in (*BOUNDS[1:], ANY_VALUE)],
        "bad_multiplier": [f"(0, {short(MAX_MULTIPLIER)}]"],
    }
    assert BOUNDS[0].quantity == "power factor" and BOUNDS[0].limit == 1
    assert {
        name: [text for text in texts if text not in meaning[name]]
        for name, texts in quoted.items()
    } == dict.fromkeys(quoted, [])


def test_readme_gives_every_rule_its_verdict():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Files that fight back", 1)[1].split("\n#", 1)[0]
    rows = {
        line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("|")
    }
    wrong = {
        rule.name: rows.get(f"`{rule.name}`")
        for rule in RULES
        if not rows.get(f"`{rule.name}`", "").startswith(
            f"| `{rule.name}` | {VERDICT[rule.refuses]} |"
        )
    }
    assert wrong == {}
