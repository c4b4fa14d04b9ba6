"""The FLUX trend plot a person reads at a glance: titled with the program and seed,
cycles on the y axis, the plateau marked."""

from __future__ import annotations

from pathlib import Path

from ouroboros.interfaces.cli.flux_evolve import Trace, plot_trend


def test_the_plot_shows_cycles_title_and_plateau(tmp_path: Path) -> None:
    # 20 → 10 cycles within 500 evaluations, then flat until 5,000
    points = [(1, 20.0), (120, 16.0), (300, 12.0), (500, 10.0)]
    trace = Trace("sum2x (seed 3)", points, plateau_at=500, total=5000)
    path = tmp_path / "trend.png"
    figure = plot_trend(trace, path)
    axes = figure.axes[0]
    assert path.stat().st_size > 1000
    assert axes.get_title() == "sum2x (seed 3)"
    assert "cycles" in axes.get_ylabel()
    best = next(line for line in axes.get_lines() if line.get_label() == "best so far")
    ys = list(best.get_ydata())
    assert ys[0] == 20 and ys[-1] == 10
    texts = [t.get_text() for t in axes.texts]
    assert any("plateau from 500 evaluations" in t for t in texts), texts
    assert axes.patches, "the plateau is not shaded"


def test_no_plateau_is_marked_while_it_keeps_improving(tmp_path: Path) -> None:
    points = [(i * 100 + 1, 100.0 - i) for i in range(30)]
    trace = Trace("t", points, plateau_at=points[-1][0], total=points[-1][0] + 50)
    figure = plot_trend(trace, tmp_path / "t.png")
    assert not figure.axes[0].texts
