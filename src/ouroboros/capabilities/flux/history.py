"""The evolution history of FLUX programs, read back from the ledger.

`ouro flux evolve` logs one ``EvolutionGeneration`` event per accepted generation (per
epoch that found a better program, for the search engine) and submits the winner as a
``bytecode`` patch to ``flux/programs/<name>``. This module folds those events into one
`ProgramHistory` per target: its evolution runs (each a series of best penalised cycles
per result, lower is better, with the trend the engine's rule gives it) and the
versions the kernel applied. Pure functions over events; the web console and any report
read the same thing.

The two engines log different shapes: the search logs ``penalised_cycles``; the classic
engine logs ``fitness_after`` (``1 / penalised cycles`` scaled by confidence and trust,
see `ouroboros.capabilities.flux.fitness.score`), read back as ``1 / fitness`` — exact
for a program that passes all its cases at the default trust 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ouroboros.capabilities.evolve.trend import Trend, classify

EVENT_KIND = "EvolutionGeneration"
PROGRAMS_PREFIX = "flux/programs/"


@dataclass(frozen=True)
class Step:
    """One logged generation: where in its run, and the kept program's cost then."""

    seq: int
    time: str
    at: int  # the generation (classic engine) or candidate evaluations so far (search)
    cycles: float  # penalised cycles per result of the kept program (lower is better)


@dataclass(frozen=True)
class Run:
    """Consecutive improvements logged by one `ouro flux evolve` (one seed, one engine)."""

    engine: str
    seed: int | None
    steps: tuple[Step, ...]

    @property
    def trend(self) -> Trend:
        """The engine's trend rule over the run's fitness (``1 / cycles``)."""
        return classify([1.0 / max(s.cycles, 1e-12) for s in self.steps])

    @property
    def first(self) -> float:
        return self.steps[0].cycles

    @property
    def best(self) -> float:
        return min(s.cycles for s in self.steps)


@dataclass(frozen=True)
class Version:
    """A program the kernel applied to the target."""

    seq: int
    time: str
    patch_hash: str
    cycles_per_result: float | None
    fitness: float | None
    size: int  # bytes of the image
    reasoning: str


@dataclass
class ProgramHistory:
    target: str
    runs: list[Run] = field(default_factory=list)
    versions: list[Version] = field(default_factory=list)
    current: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.target.removeprefix(PROGRAMS_PREFIX)

    @property
    def trend(self) -> Trend:
        """The latest run's trend (a plateau when nothing was logged)."""
        return self.runs[-1].trend if self.runs else Trend.PLATEAU


def _step(p: Mapping[str, Any]) -> tuple[str, int | None, int | None, float] | None:
    """(engine, seed, counter, cycles) of one event payload, None when it has neither
    shape (an event written by something else is skipped, not trusted)."""
    seed = p.get("seed") if isinstance(p.get("seed"), int) else None
    if isinstance(p.get("penalised_cycles"), int | float) and p["penalised_cycles"] > 0:
        counter = p.get("evaluations") if isinstance(p.get("evaluations"), int) else None
        return str(p.get("engine") or "search"), seed, counter, float(p["penalised_cycles"])
    if isinstance(p.get("fitness_after"), int | float) and p["fitness_after"] > 0:
        counter = p.get("generation") if isinstance(p.get("generation"), int) else None
        return "classic", seed, counter, 1.0 / float(p["fitness_after"])
    return None


@dataclass
class _OpenRun:
    engine: str
    seed: int | None
    last: int = -1  # the run's counter at its latest step
    steps: list[Step] = field(default_factory=list)


def program_histories(events: Iterable[Any], values: Mapping[str, Any]) -> list[ProgramHistory]:
    """Every FLUX program's history, by target name.

    Args:
        events: ledger events in seq order (`Event` objects; other kinds are ignored).
        values: the state's target values (the programs in place now).
    """
    histories: dict[str, ProgramHistory] = {}
    open_runs: dict[str, _OpenRun] = {}

    def history(target: str) -> ProgramHistory:
        return histories.setdefault(target, ProgramHistory(target))

    def close(target: str) -> None:
        run = open_runs.pop(target, None)
        if run is not None:
            history(target).runs.append(Run(run.engine, run.seed, tuple(run.steps)))

    for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        target = payload.get("target")
        if not isinstance(target, str) or not target.startswith(PROGRAMS_PREFIX):
            continue
        if event.kind == EVENT_KIND:
            parsed = _step(payload)
            if parsed is None:
                continue
            engine, seed, counter, cycles = parsed
            run = open_runs.get(target)
            # a new run: another engine or seed, or the run's counter went back
            if run is not None and (run.engine != engine or run.seed != seed
                                    or (counter is not None and counter <= run.last)):
                close(target)
                run = None
            if run is None:
                run = open_runs[target] = _OpenRun(engine, seed)
            run.last = counter if counter is not None else len(run.steps) + 1
            run.steps.append(Step(event.seq, event.time, run.last, cycles))
        elif event.kind == "PatchApplied" and payload.get("type") == "bytecode":
            close(target)  # a submitted winner ends the run that found it
            history(target).versions.append(_version(event))
    for target in list(open_runs):
        close(target)
    for target, value in values.items():
        if target.startswith(PROGRAMS_PREFIX) and isinstance(value, Mapping):
            history(target).current = value
    return sorted(histories.values(), key=lambda h: h.target)


def _version(event: Any) -> Version:
    from ouroboros.kernel.state import patch_from_envelope

    patch = patch_from_envelope(event.payload["envelope"])
    value = patch.get("op", {}).get("value")
    value = value if isinstance(value, Mapping) else {}

    def number(key: str) -> float | None:
        x = value.get(key)
        return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None

    hex_text = value.get("hex")
    return Version(event.seq, event.time, str(event.payload.get("patch_hash", "")),
                   number("cycles_per_result"), number("fitness"),
                   len(hex_text) // 2 if isinstance(hex_text, str) else 0,
                   str(patch.get("reasoning", "")))
