"""Tool names and descriptions are shown in `ouro tool list`, search results, MCP tool
names and the solve prompt. A name that only looks like another (a Cyrillic 'а' in
`sum_ints`, a trailing newline) or a description carrying terminal escapes, bidi controls
or zero-width characters is refused when the tool is added, with a one-line reason naming
the character; nothing is registered.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.interfaces.cli.tool import app
from ouroboros.kernel import Runtime


def _tool(tmp_path: Path, **changes: str) -> Path:
    starter = next(d for d in starter_dirs() if d.name == "sum_ints")
    target = tmp_path / "tool"
    shutil.copytree(starter, target)
    meta = json.loads((target / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps({**meta, **changes}))
    return target


@pytest.fixture
def home(tmp_path: Path) -> Path:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)

    Runtime.init(tmp_path / "ws").close()
    return tmp_path / "ws"


def _add(home: Path, directory: Path) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(app, ["add", str(directory), "--home", str(home), "--json"])
    return result.exit_code, json.loads(result.stdout), result.output


def _nothing_registered(home: Path) -> None:
    with Runtime.open(home) as rt:
        assert not [t for t, v in rt.refresh().values.items()
                    if t.startswith("skills/") and v is not None]
    tools = home / "skills" / "tools"
    assert not tools.exists() or not [p for p in tools.iterdir() if p.name != ".staging"]


@pytest.mark.parametrize("name", [
    "sum_ints\n",          # passed a ^...$ match: the tool was registered under a name
    "sum_\u0430nts",       # Cyrillic а, looks like sum_ints
    "sum_ints\u200b",      # zero-width space
    "\u0455um_ints",       # Cyrillic ѕ
])
def test_a_name_that_only_looks_valid_is_refused_at_add(
        tmp_path: Path, home: Path, name: str) -> None:
    code, out, text = _add(home, _tool(tmp_path, name=name))
    assert code == 3, text
    assert out["status"] == "rejected" and out["reason"] == "malformed", out
    assert "tool name" in str(out["detail"]) and "Traceback" not in text
    _nothing_registered(home)


@pytest.mark.parametrize("bad,named", [
    ("\x1b[2J\x1b[Hall clear", "U+001B"),              # terminal escape: clears the screen
    ("\x1b]52;c;aGk=\x07", "U+001B"),                 # OSC 52: writes the clipboard
    ("\x9b31mred", "U+009B"),                         # C1 CSI
    ("sum \u202estni_mus", "U+202E"),                 # right-to-left override
    ("sum \u2066isolate\u2069", "U+2066"),            # left-to-right isolate
    ("s\u200bu\u200bm", "U+200B"),                    # zero-width space
    ("sum\ufeff", "U+FEFF"),                          # zero-width no-break space
    ("sum\u00ad ints", "U+00AD"),                     # soft hyphen (invisible)
    ("nul\x00byte", "U+0000"),
])
def test_a_description_with_control_or_invisible_characters_is_refused_at_add(
        tmp_path: Path, home: Path, bad: str, named: str) -> None:
    code, out, text = _add(home, _tool(tmp_path, description=f"Sum integers. {bad}"))
    assert code == 3, text
    assert out["status"] == "rejected" and out["reason"] == "malformed", out
    assert named in str(out["detail"]) and "description" in str(out["detail"]), out
    assert "\x1b" not in text and "\u202e" not in text  # the reason shows it escaped
    _nothing_registered(home)


def test_honest_non_ascii_descriptions_are_still_added(tmp_path: Path, home: Path) -> None:
    honest = "Summe ganzer Zahlen — naïve café, 20 °C → 68 °F, 合計, сумма.\nTwo lines\tand a tab."
    code, out, text = _add(home, _tool(tmp_path, description=honest))
    assert code == 0, text
    assert out["status"] == "applied" and out["description"] == honest


def test_stored_text_with_escapes_is_printed_escaped_by_describe(
        tmp_path: Path, home: Path) -> None:
    """A version registered before the check may hold such a description: the terminal
    listings (list, describe, search) print it as \\uXXXX, never the raw character."""
    from ouroboros.interfaces.cli.output import printable
    from ouroboros.interfaces.cli.tool import describe_lines

    assert printable("a\x1b[2Jb\u202ec\u200bd\x9be\tf\ng é") == (
        "a\\u001b[2Jb\\u202ec\\u200bd\\u009be\tf\ng é")
    code, _, text = _add(home, _tool(tmp_path))
    assert code == 0, text
    result = CliRunner().invoke(app, ["describe", "sum_ints", "--home", str(home), "--json"])
    info = json.loads(result.stdout)
    info["description"] = "Sum. \x1b]52;c;aGk=\x07 \u202eevil"
    shown = "\n".join(describe_lines(info))
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\\u001b]52;c;aGk=\\u0007 \\u202eevil" in shown
