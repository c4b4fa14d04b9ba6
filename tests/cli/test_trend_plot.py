"""The FLUX trend plot a person reads at a glance: titled with the program and seed,
cycles on the y axis, the plateau marked."""

from __future__ import annotations

from pathlib import Path

from ouroboros.capabilities.evolve.engine import EvolutionRecord
from ouroboros.interfaces.cli.flux_evolve import plot_trend


def test_the_plot_shows_cycles_title_and_plateau(tmp_path: Path) -> None:
    # fitness = 1 / cycles (confidence 1, trust 1): 20 → 10 cycles by generation 5, then flat
    fitness = {g: 1 / max(10, 20 - 2 * g) for g in range(1, 41)}
    history = [EvolutionRecord(g, "m", fitness.get(g - 1, 1 / 20), fitness[g], True, 16)
               for g in range(1, 41)]
    path = tmp_path / "trend.png"
    figure = plot_trend(history, 1 / 20, path, title="FLUX evolution of sum2x.fasm (seed 3)",
                        cycles_at_fitness=1.0)
    axes = figure.axes[0]
    assert path.stat().st_size > 1000
    assert axes.get_title() == "FLUX evolution of sum2x.fasm (seed 3)"
    assert "cycles" in axes.get_ylabel()
    best = next(line for line in axes.get_lines() if line.get_label() == "best so far")
    ys = list(best.get_ydata())
    assert ys[0] == 20 and ys[-1] == 10
    texts = [t.get_text() for t in axes.texts]
    assert any("plateau since generation 5" in t for t in texts), texts
    assert axes.patches, "the plateau is not shaded"


def test_no_plateau_is_marked_while_it_keeps_improving(tmp_path: Path) -> None:
    history = [EvolutionRecord(g, "m", 1 / (100 - g + 1), 1 / (100 - g), True, 16)
               for g in range(1, 30)]
    figure = plot_trend(history, 1 / 100, tmp_path / "t.png", title="t", cycles_at_fitness=1.0)
    assert not figure.axes[0].texts
