"""Experiment specs: a run's settings as a versioned YAML file under ``experiments/``.

A spec holds everything that decides what a ``train`` or ``backtest`` run does: the data window,
the test start, the validation fraction, the seed, the trial budget, and per system its fixed
parameters and search space; plus the backtest window. The defaults live only in
``experiments/default.yaml``, so an experiment is reviewed, versioned and rerun as one file, and
changing a search space is a one-file diff. A spec may name a ``base`` spec and change parts of it.

Loading validates every value and stops with one sentence naming the file, the key and the value.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import settings
from contracts import SYSTEMS
from markets import DEFAULT_MARKET, MARKETS
from registry import systems as system_table

DEFAULT_SPEC = "experiments/default.yaml"
TOP_KEYS = ("base", "markets", "data", "seed", "tuning", "systems", "backtest")
SECTION_KEYS = {"data": ("start_date", "end_date", "test_start", "val_fraction"),
                "tuning": ("n_trials", "timeout"), "backtest": ("start_date", "end_date")}
SYSTEM_KEYS = ("tune", "params", "search_space")
PARAM_TYPES = ("float", "int", "categorical")
# the names a caller overrides (CLI, MLproject -P, a retrain job) and where they sit in the file
OVERRIDES = {"start_date": ("data", "start_date"), "end_date": ("data", "end_date"),
             "test_start": ("data", "test_start"), "val_fraction": ("data", "val_fraction"),
             "n_trials": ("tuning", "n_trials"), "timeout": ("tuning", "timeout"), "seed": ("seed",),
             "backtest_start": ("backtest", "start_date"), "backtest_end": ("backtest", "end_date")}


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: a date stays text until the spec reads it, so a bad one
    (2025-13-01) is reported with its key instead of failing inside the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class ConfigError(ValueError):
    """A run setting that cannot work; raised before any work starts, naming the setting and its value."""


@dataclass(frozen=True)
class Param:
    """One dimension of a search space."""

    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def cast(self, logged: str) -> Any:
        """A value MLflow logged as text, back in this parameter's type."""
        if self.type == "int":
            return int(float(logged))
        if self.type == "float":
            return float(logged)
        return next(c for c in self.choices if str(c) == logged)


@dataclass(frozen=True)
class SystemSpec:
    tune: bool
    params: dict[str, Any]  # the fit's parameters without tuning; tuned values replace them
    search_space: dict[str, Param]


@dataclass(frozen=True)
class RunSpec:
    source: str  # the file, as the user named it (errors and the logged params name it)
    raw: dict[str, Any]  # the validated file, base applied: what is logged as the run's spec
    start_date: dt.date | None
    end_date: dt.date | None
    test_start: dt.date | None
    val_fraction: float
    seed: int
    n_trials: int
    timeout: float | None
    systems: dict[str, SystemSpec]  # in the order of the table of systems
    markets: tuple[str, ...]  # in the order of the table of markets; each trains every system
    backtest_start: dt.date
    backtest_end: dt.date

    def tuned(self, system: str) -> bool:
        return self.systems[system].tune and self.n_trials > 0

    def override(self, **changes: Any) -> RunSpec:
        """A copy with some settings replaced (keys of ``OVERRIDES``, or ``systems``: a subset of this
        spec's), validated like the file. ``None`` leaves a setting as the spec has it."""
        raw = yaml.load(yaml.safe_dump(self.raw, sort_keys=False), _Loader)  # a deep copy
        for name, value in changes.items():
            if value is None:
                continue
            if name == "markets":
                raw["markets"] = list(value)
                continue
            if name == "systems":
                missing = [s for s in value if s not in raw["systems"]]
                if missing:
                    raise ConfigError(f"systems includes {missing[0]!r}; {self.source} has "
                                      f"{', '.join(self.systems)}")
                raw["systems"] = {s: raw["systems"][s] for s in value}
                continue
            if name not in OVERRIDES:
                raise ConfigError(f"{name} cannot be overridden; these can: markets, systems, {', '.join(OVERRIDES)}")
            *sections, key = OVERRIDES[name]
            target = raw
            for section in sections:
                target = target.setdefault(section, {})
            target[key] = value
        return parse(raw, self.source, f"{self.source} with overrides")

    def log_params(self) -> dict[str, Any]:
        """The run settings as MLflow params (the whole spec is logged beside them as an artifact)."""
        return {"experiment": self.source, "n_trials": self.n_trials, "timeout": self.timeout,
                "seed": self.seed, "val_fraction": self.val_fraction}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Typed reads of one spec's values; every failure names the file, the key path and the value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} is {_short(value)}, expected {expected}")

    def mapping(self, key: str, value: Any, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, value, "a mapping")
        unknown = [k for k in value if allowed is not None and k not in allowed]
        if unknown:
            raise ConfigError(f"{self.source}: {key}.{unknown[0]} is not a setting; "
                              f"{key or 'the top level'} takes {', '.join(allowed or ())}")
        return value

    def date(self, key: str, value: Any, optional: bool = True) -> dt.date | None:
        if value is None and optional:
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise self.fail(key, value, "a date YYYY-MM-DD" + (" or null" if optional else "")) from None

    def number(self, key: str, value: Any, kind: type = float, minimum: float | None = None) -> Any:
        what = "an integer" if kind is int else "a number"
        wrong_kind = not isinstance(value, int if kind is int else int | float)
        if isinstance(value, bool) or wrong_kind:
            raise self.fail(key, value, what)
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            raise self.fail(key, value, f"{what} of at least {minimum}")
        return kind(value)

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, value, "true or false")
        return value

    def param(self, key: str, value: Any) -> Param:
        spec = self.mapping(key, value, ("type", "low", "high", "log", "choices"))
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise self.fail(f"{key}.type", kind, "one of " + ", ".join(PARAM_TYPES))
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise self.fail(f"{key}.choices", choices, "a non-empty list")
            return Param(kind, choices=tuple(choices))
        number = int if kind == "int" else float
        low = self.number(f"{key}.low", spec.get("low"), number)
        high = self.number(f"{key}.high", spec.get("high"), number)
        if high <= low:
            raise self.fail(f"{key}.high", high, f"a number above low ({low})")
        log = self.flag(f"{key}.log", spec.get("log", False))
        if log and low <= 0:
            raise self.fail(f"{key}.low", low, "a positive number (log scale)")
        return Param(kind, low, high, log)

    def system(self, name: str, value: Any) -> SystemSpec:
        key = f"systems.{name}"
        spec = self.mapping(key, value, SYSTEM_KEYS)
        tunable = system_table.module(name).TUNED
        tune = self.flag(f"{key}.tune", spec.get("tune", tunable))
        if tune and not tunable:
            raise self.fail(f"{key}.tune", tune, f"false: {name} has nothing to tune")
        params = self.mapping(f"{key}.params", spec.get("params"))
        for param, fixed in params.items():
            if not isinstance(fixed, str | int | float | bool):
                raise self.fail(f"{key}.params.{param}", fixed, "a number, string or true/false")
        space = {p: self.param(f"{key}.search_space.{p}", v)
                 for p, v in self.mapping(f"{key}.search_space", spec.get("search_space")).items()}
        if tune and not space:
            raise self.fail(f"{key}.search_space", spec.get("search_space"), "a search space (or tune: false)")
        return SystemSpec(tune, dict(params), space)


def parse(raw: Any, source: str, label: str | None = None) -> RunSpec:
    """A validated spec from the mapping a YAML file holds; errors start with ``label`` (default: the file)."""
    read = _Reader(label or source)
    top = read.mapping("", raw, TOP_KEYS)
    data = read.mapping("data", top.get("data"), SECTION_KEYS["data"])
    tuning = read.mapping("tuning", top.get("tuning"), SECTION_KEYS["tuning"])
    window = read.mapping("backtest", top.get("backtest"), SECTION_KEYS["backtest"])
    listed = read.mapping("systems", top.get("systems"))
    unknown = [s for s in listed if s not in SYSTEMS]
    if unknown:
        raise ConfigError(f"{read.source}: systems.{unknown[0]} is not a system; the systems are {', '.join(SYSTEMS)}")
    chosen = [s for s in SYSTEMS if s in listed]  # the table's order: members before a combination
    if not chosen or all(system_table.module(s).COMBINES for s in chosen):
        raise read.fail("systems", ", ".join(chosen) or None,
                        "at least one system that is not a combination of others")
    timeout = tuning.get("timeout")
    markets = top.get("markets", [DEFAULT_MARKET])
    if not isinstance(markets, list) or not markets:
        raise read.fail("markets", markets, "a non-empty list of markets")
    for name in markets:
        if name not in MARKETS:
            raise read.fail("markets", name, "one of " + ", ".join(MARKETS))
    spec = RunSpec(
        source=source, raw=top,
        start_date=read.date("data.start_date", data.get("start_date")),
        end_date=read.date("data.end_date", data.get("end_date")),
        test_start=read.date("data.test_start", data.get("test_start")),
        val_fraction=read.number("data.val_fraction", data.get("val_fraction"), float, 0.0),
        seed=read.number("seed", top.get("seed"), int, 0),
        n_trials=read.number("tuning.n_trials", tuning.get("n_trials"), int, 0),
        timeout=None if timeout in (None, "none") else read.number("tuning.timeout", timeout, float, 1.0),
        systems={s: read.system(s, listed[s]) for s in chosen},
        markets=tuple(m for m in MARKETS if m in markets),
        backtest_start=read.date("backtest.start_date", window.get("start_date"), optional=False),
        backtest_end=read.date("backtest.end_date", window.get("end_date"), optional=False),
    )
    if not 0 < spec.val_fraction < 1:
        raise read.fail("data.val_fraction", spec.val_fraction, "a number between 0 and 1")
    for first, last, key in ((spec.start_date, spec.end_date, "data.start_date"),
                             (spec.backtest_start, spec.backtest_end, "backtest.start_date")):
        if first and last and first > last:
            raise read.fail(key, str(first), f"a date on or before {key.replace('start', 'end')} ({last})")
    return spec


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def _resolve(path: str | Path, relative_to: Path) -> Path:
    """A spec path as given, else relative to the including file or the repository."""
    for candidate in (Path(path), relative_to / path, settings.REPO_ROOT / path):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"experiment is {str(path)!r}: no such spec file")


def _read(path: Path, source: str, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in seen:
        raise ConfigError(f"{source}: base {str(path)!r} includes itself")
    try:
        raw = yaml.load(path.read_text(), _Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    raw = _Reader(source).mapping("", raw, TOP_KEYS)
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str):
        raise _Reader(source).fail("base", base, "the path of another spec")
    return _merge(_read(_resolve(base, path.parent), base, (*seen, path.resolve())), raw)


def load_spec(path: str | Path = DEFAULT_SPEC) -> RunSpec:
    """Read and validate a spec file (a relative path is looked up from here, then from the repository)."""
    return parse(_read(_resolve(path, Path.cwd()), str(path)), str(path))
