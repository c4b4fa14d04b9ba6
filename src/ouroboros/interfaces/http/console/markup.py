"""Hostile text made safe to show: every string the console prints passes through here.

What the console shows was written by LLMs, agents and telemetry sources: patch
reasoning, tool descriptions, proposal prose, finding text, error messages. Three rules:

- **Escaped, always.** Templates autoescape; nothing user-written is ever marked safe
  except the output of `markdown`, which builds its HTML itself from escaped text.
- **Visible.** Bidirectional overrides, zero-width and control characters are shown as
  ``⟨U+202E⟩`` instead of being obeyed, so text cannot reorder or hide what a reviewer
  reads next to an Approve button (`visible`, applied to every ``{{ … }}``).
- **Markdown without HTML or links.** Proposal prose is markdown; it is rendered with raw
  HTML, links, images and autolinks switched off, so the output holds only the
  structural tags markdown-it makes (paragraphs, emphasis, code, lists, headings,
  quotes, tables), with no attribute but the ones listed in `_SAFE_TAGS`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

# Bidi embeddings/overrides/isolates, marks, zero-width space and joiners that carry no
# meaning in this text, BOM, and C0/C1 controls other than tab, newline, carriage return.
_HIDDEN = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
                     "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
                     "\ufeff\ufff9-\ufffb]")
MAX_SHOWN = 200_000  # characters of one value a page shows (the rest is elided)


def visible(text: str) -> str:
    """``text`` with every hidden or reordering character written out as ``⟨U+XXXX⟩``."""
    return _HIDDEN.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def finalize(value: Any) -> Any:
    """Jinja's ``finalize``: plain strings shown with `visible`; `Markup` (already built
    from escaped text) passes untouched; None prints as nothing."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut (one line)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    """A JSON value as indented text (cut at `MAX_SHOWN` characters, saying so)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN:,} more characters)"
    return text


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs: ``add``, ``del``, ``hunk``, ``file``,
    ``ctx``."""
    out: list[tuple[str, str]] = []
    for line in diff[:MAX_SHOWN].splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    if len(diff) > MAX_SHOWN:
        out.append(("ctx", f"… ({len(diff) - MAX_SHOWN:,} more characters)"))
    return out


# -- markdown ------------------------------------------------------------------------------
_SAFE_TAGS = {"p", "em", "strong", "s", "code", "pre", "ul", "ol", "li", "h1", "h2", "h3",
              "h4", "h5", "h6", "blockquote", "hr", "br", "table", "thead", "tbody", "tr",
              "th", "td"}
_md: Any = None


def _renderer() -> Any:
    global _md
    if _md is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        md.enable("table").enable("strikethrough")
        md.disable(["link", "image", "autolink", "html_inline", "html_block", "reference"])

        def fence(_: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
            # no info string in the output (it would become a class attribute)
            return f"<pre><code>{escape(tokens[idx].content)}</code></pre>\n"

        def table_cell(_: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
            # markdown-it writes alignment as a style attribute; the CSP forbids those
            tag = tokens[idx].tag
            return f"<{tag}>" if tokens[idx].nesting == 1 else f"</{tag}>"

        md.add_render_rule("fence", fence)
        md.add_render_rule("code_block", fence)
        for rule in ("th_open", "td_open", "th_close", "td_close"):
            md.add_render_rule(rule, table_cell)
        _md = md
    return _md


_TAG = re.compile(r"<(/?)([a-zA-Z0-9]+)([^>]*)>")


def markdown(text: str) -> Markup:
    """Markdown prose as HTML made only of `_SAFE_TAGS` without attributes.

    The renderer escapes all text itself; as a second line of defence, any tag it made
    that is not in the list, or that carries an attribute, is escaped to text.
    """
    html = _renderer().render(visible(text[:MAX_SHOWN]))

    def check(m: re.Match[str]) -> str:
        if m.group(2).lower() in _SAFE_TAGS and not m.group(3).strip(" /"):
            return m.group(0)
        return str(escape(m.group(0)))

    return Markup(_TAG.sub(check, html))
