"""Settings TOML (kernel/settings/): ``parse_toml`` then ``validate``, as `load_settings`
reads a workspace's settings file.

Invariant: a settings text either loads or raises ``SettingsError`` (one-line problems
naming file, line and key); ``key_lines`` never raises.
"""

from __future__ import annotations

import re

from _harness import ROOT, fuzz, instrumented

with instrumented(__name__):
    from ouroboros.kernel.settings.sources import (
        SettingsError,
        key_lines,
        parse_toml,
        validate,
    )


def seeds() -> list[bytes]:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    return [b.encode() for b in blocks] + [b'[improve.writer]\nkind = "llm"\nmax_attempts = 0\n',
                                           b"a = '''\nx\n'''\n[[t]]\n"]


def test_one(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    key_lines(text)
    try:
        source = parse_toml(text, "fuzz.toml")
        if source is not None:
            validate([source])
    except SettingsError as e:
        for problem in e.problems:
            str(problem)


if __name__ == "__main__":
    fuzz(test_one)
