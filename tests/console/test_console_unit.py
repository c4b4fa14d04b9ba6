"""The console's pure parts: escaping and markdown against hostile text, sessions and
their expiry, safe redirects, the views' diffs and charts, FLUX history read back from
events, the templates' own rules (no inline script or style, a CSRF field in every
form), and the vendored htmx file."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.evolve.trend import Trend
from ouroboros.capabilities.flux.history import program_histories
from ouroboros.interfaces.http.console import markup, views
from ouroboros.interfaces.http.console.auth import safe_next
from ouroboros.interfaces.http.console.sessions import SessionStore

from .workspace import MARKDOWN_XSS, XSS

PACKAGE = resources.files("ouroboros.interfaces.http.console")
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


# -- vendored files and templates ---------------------------------------------------------
def test_the_vendored_htmx_is_the_published_file_with_its_licence() -> None:
    body = PACKAGE.joinpath("static", "htmx.min.js").read_bytes()
    assert hashlib.sha256(body).hexdigest() == HTMX_SHA256
    licence = PACKAGE.joinpath("static", "htmx.LICENSE").read_text()
    assert "Zero-Clause BSD" in licence
    assert HTMX_SHA256 in PACKAGE.joinpath("static", "README.md").read_text()


def _templates() -> dict[str, str]:
    folder = PACKAGE.joinpath("templates")
    return {p.name: p.read_text() for p in folder.iterdir() if p.name.endswith(".html")}


def test_templates_have_no_inline_script_style_or_unescaped_output() -> None:
    for name, text in _templates().items():
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), name
        assert "<style" not in text and not re.search(r"\sstyle=", text), name
        assert not re.search(r"\son[a-z]+=", text), name  # no event-handler attributes
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, name
        assert "javascript:" not in text, name


def test_every_post_form_carries_a_csrf_field() -> None:
    for name, text in _templates().items():
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", text, re.S):
            if 'action="/login"' in form:
                assert 'name="login"' in form  # the login nonce instead
            else:
                assert 'name="csrf" value="{{ viewer.csrf }}"' in form, (name, form[:80])


# -- escaping -----------------------------------------------------------------------------
def test_visible_writes_out_bidi_zero_width_and_control_characters() -> None:
    assert markup.visible("a\u202eb\u200bc\x00d\ufeff") == \
        "a⟨U+202E⟩b⟨U+200B⟩c⟨U+0000⟩d⟨U+FEFF⟩"
    assert markup.visible("tabs\tand\nnewlines stay, é 中 👍") == \
        "tabs\tand\nnewlines stay, é 中 👍"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_nothing_hidden_survives_visible(text: str) -> None:
    shown = markup.visible(text)
    assert not markup._HIDDEN.search(shown)
    if not markup._HIDDEN.search(text):
        assert shown == text


def test_templates_escape_and_reveal_through_finalize() -> None:
    from ouroboros.interfaces.http.console.rendering import templates

    out = templates.from_string("<p title=\"{{ x }}\">{{ x }}</p>").render(
        x=XSS + "\u202e")
    assert "<script" not in out and "onerror=" not in out.replace("onerror=&#34;", "")
    assert "&lt;script&gt;" in out and "⟨U+202E⟩" in out
    assert out.count('"') == 2  # the attribute was not broken out of


HOSTILE_MARKDOWN = [
    MARKDOWN_XSS,
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x]: javascript:alert(1)\n\n[x]",
    "<https://evil.example>",
    "![x](https://evil.example/t.png)",
    "<img src=x onerror=alert(1)>",
    "```\"><script>alert(1)</script>\n```",
    "``` onmouseover=alert(1)\ncode\n```",
    "| a | b |\n|:-:|--:|\n| <b>x</b> | y |",
    "*<svg/onload=alert(1)>*",
    "&lt;script&gt; &#60;script&#62; &#x3C;script&#x3E;",
    "<!-- comment --><iframe src=//evil>",
]


@pytest.mark.parametrize("text", HOSTILE_MARKDOWN)
def test_markdown_makes_only_bare_structural_tags(text: str) -> None:
    html = str(markup.markdown(text))
    for tag in re.findall(r"<(/?[a-zA-Z0-9]+)([^>]*)>", html):
        assert tag[0].lstrip("/").lower() in markup._SAFE_TAGS, (text, tag)
        assert not tag[1].strip(" /"), (text, tag)  # no attributes at all
    assert "<a" not in html and "<img" not in html and "<script" not in html.lower()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>\"'`=/&#;:()[]!*_|-\n ascriptjvonelrhfgimx")),
               max_size=80))
def test_markdown_of_any_text_has_no_attribute_or_unknown_tag(text: str) -> None:
    html = str(markup.markdown(text))
    for name, attrs in re.findall(r"<(/?[a-zA-Z0-9]+)([^>]*)>", html):
        assert name.lstrip("/").lower() in markup._SAFE_TAGS and not attrs.strip(" /")


def test_markdown_still_formats_prose() -> None:
    html = str(markup.markdown("**bold** and *it*\n\n- one\n- `two`\n\n| a |\n|---|\n| 1 |"))
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<li><code>two</code></li>" in html and "<td>1</td>" in html


# -- sessions -----------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_end_when_idle_or_too_old_and_ids_are_fresh() -> None:
    clock = Clock()
    store = SessionStore(idle=60, lifetime=300, clock=clock)
    sid, session = store.create("tok")
    assert store.get(sid) is session and store.get(sid + "x") is None and store.get("") is None
    other, _ = store.create("tok")
    assert other != sid and len(sid) >= 43
    clock.now += 59
    assert store.get(sid) is session  # a request renews the idle timer
    clock.now += 59
    assert store.get(sid) is session
    clock.now += 61
    assert store.get(sid) is None and store.get(other) is None
    sid, _ = store.create("tok")
    for _ in range(5):
        clock.now += 50
        assert store.get(sid) is not None
    clock.now += 55
    assert store.get(sid) is None  # 305 s after login, however active
    sid, _ = store.create("tok")
    store.end(sid)
    assert store.get(sid) is None


def test_session_count_is_bounded_least_recently_used_first() -> None:
    store = SessionStore(capacity=3)
    ids = [store.create(f"t{i}")[0] for i in range(3)]
    store.get(ids[0])  # used: kept
    newest, _ = store.create("t3")
    assert len(store) == 3
    assert store.get(ids[1]) is None
    assert all(store.get(i) is not None for i in (ids[0], ids[2], newest))


def test_csrf_tokens_are_per_session_and_compared_whole() -> None:
    store = SessionStore()
    _, a = store.create("x")
    _, b = store.create("x")
    assert a.csrf != b.csrf
    assert a.check_csrf(a.csrf) and not a.check_csrf(b.csrf)
    for bad in (None, "", a.csrf[:-1], a.csrf + "x", a.csrf.upper(), "\ud800"):
        assert not a.check_csrf(bad)


def test_login_nonces_belong_to_one_server_and_expire() -> None:
    store, other = SessionStore(), SessionStore()
    cookie, mac = store.login_nonce()
    assert store.check_login_nonce(cookie, mac)
    their_cookie, their_mac = other.login_nonce()
    assert not store.check_login_nonce(their_cookie, their_mac)
    assert not store.check_login_nonce(cookie, their_mac)
    assert not store.check_login_nonce(None, mac) and not store.check_login_nonce(cookie, None)
    issued, _, rest = cookie.partition(".")
    old = f"{int(issued) - 7200}.{rest}"
    assert not store.check_login_nonce(old, store._login_mac(old))
    assert not store.check_login_nonce("x" * 200, mac)


def test_flash_messages_are_shown_once_and_bounded() -> None:
    _, session = SessionStore().create("x")
    for i in range(20):
        session.say("good", f"m{i}")
    shown = session.take_flash()
    assert len(shown) == 8 and shown[-1] == ("good", "m19")
    assert session.take_flash() == []


@pytest.mark.parametrize(("target", "expected"), [
    ("/tools?x=1", "/tools?x=1"), ("/", "/"), ("", "/"), (None, "/"),
    ("//evil.example", "/"), ("https://evil.example", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("/a\nb", "/"), ("/a b", "/"), (" /x", "/"),
])
def test_safe_next_stays_inside_the_console(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# -- views --------------------------------------------------------------------------------
def _envelope(patch: dict[str, Any], keyid: str = "k1") -> dict[str, Any]:
    import base64
    import json

    return {"payload": base64.b64encode(json.dumps(patch).encode()).decode(),
            "payloadType": "application/vnd.ouroboros.patch+json",
            "signatures": [{"keyid": keyid, "sig": "00"}]}


def _patch(target: str, op: dict[str, Any], base: str = "sha256:" + "0" * 64) -> dict[str, Any]:
    return {"type": "config", "target": target, "base": base, "op": op, "reasoning": "r",
            "test_requirements": [], "author": "alice", "created": "2026-01-01T00:00:00Z"}


def test_a_pending_patch_shows_the_change_it_would_make() -> None:
    from ouroboros.kernel.canonical import content_hash

    old = {"a": 1, "b": [1, 2]}
    entry = {"envelope": _envelope(_patch("t/x", {"kind": "json_patch", "ops": [
        {"op": "replace", "path": "/a", "value": 2}]}, content_hash(old)), "k1"),
        "needs": "approval", "seq": 4, "author": "alice"}
    view = views.pending_patch("sha256:" + "ab" * 32, entry, {"t/x": old},
                               content_hash(old), {"k1": "alice"})
    assert '-  "a": 1,' in view.diff and '+  "a": 2,' in view.diff
    assert view.base_current and view.signers == ["alice"] and view.proposal is None
    stale = views.pending_patch("sha256:" + "ab" * 32, entry, {"t/x": old}, "sha256:other", {})
    assert not stale.base_current and stale.signers == ["k1"]
    text = {"envelope": _envelope(_patch("improve/proposals/abc123", {"kind": "diff",
            "diff": "@@ -1 +1 @@\n-x\n+y\n"})), "needs": "", "seq": 1}
    view = views.pending_patch("sha256:" + "cd" * 32, text, {"improve/proposals/abc123": "x\n"},
                               "", {})
    assert "-x" in view.diff and "+y" in view.diff and view.proposal == "abc123"
    broken = views.pending_patch("sha256:" + "cd" * 32, text, {"improve/proposals/abc123": "z\n"},
                                 "", {})
    assert broken.diff == "" and "does not apply" in broken.note


def test_event_rows_say_what_happened_in_words() -> None:
    @dataclass
    class E:
        seq: int
        kind: str
        time: str
        key_id: str
        payload: dict[str, Any]

    names = {"kid": "runtime"}
    row = views.event_row(E(3, "EvolutionGeneration", "2026-01-01T00:00:00.5Z", "kid",
                            {"target": "flux/programs/x", "accepted": True,
                             "fitness_after": 0.0998601957, "mutation": "Swap",
                             "nested": {"a": 1}}), names)
    assert row.text == "accepted yes, fitness after 0.09986, mutation Swap"
    assert row.signer == "runtime" and row.time == "2026-01-01 00:00:00"
    rejected = views.event_row(E(4, "PatchRejected", "t", "x" * 64, {
        "patch_hash": "sha256:" + "1" * 64, "stage": "audit", "reason": "bad", "author": "a"}),
        names)
    assert rejected.text == "audit: bad" and rejected.tone == "bad"
    assert rejected.short_hash == "1" * 12 and rejected.signer == "x" * 12
    odd = views.event_row(E(5, "PatchApplied", "t", "k", {"envelope": "not an envelope"}), {})
    assert odd.text == "" and odd.target is None


def test_line_charts_fit_their_box() -> None:
    assert views.line_chart([]) is None
    chart = views.line_chart([(1, 17.0), (2, 12.0), (10, 10.0)])
    assert chart is not None
    xs = [x for x, _ in chart.dots]
    ys = [y for _, y in chart.dots]
    assert xs[0] == chart.left and xs[-1] == chart.right
    assert ys[0] == chart.top and ys[-1] == chart.bottom  # highest at the top
    flat = views.line_chart([(5, 3.0)])
    assert flat is not None and len(flat.dots) == 2 and flat.dots[0][1] == flat.dots[1][1]


# -- FLUX history -------------------------------------------------------------------------
@dataclass
class Ev:
    seq: int
    kind: str
    payload: Any
    time: str = "2026-01-01T00:00:00Z"


def test_runs_split_by_engine_seed_and_counter_and_junk_is_skipped() -> None:
    t = "flux/programs/p"
    events = [
        Ev(1, "EvolutionGeneration", {"target": t, "generation": 1, "fitness_after": 0.05}),
        Ev(2, "EvolutionGeneration", {"target": t, "generation": 2, "fitness_after": 0.1}),
        Ev(3, "EvolutionGeneration", {"target": t, "generation": 1, "fitness_after": 0.05}),
        Ev(4, "EvolutionGeneration", {"target": t, "evaluations": 100, "penalised_cycles": 9.0,
                                      "engine": "search", "seed": 7}),
        Ev(5, "EvolutionGeneration", {"target": t, "evaluations": 300, "penalised_cycles": 8.0,
                                      "engine": "search", "seed": 7}),
        Ev(6, "EvolutionGeneration", {"target": t, "penalised_cycles": "fast"}),  # junk
        Ev(7, "EvolutionGeneration", {"target": t, "fitness_after": -1}),  # junk
        Ev(8, "EvolutionGeneration", "not a dict"),
        Ev(9, "EvolutionGeneration", {"target": "elsewhere", "fitness_after": 1.0}),
        Ev(10, "EvolutionGeneration", {"target": t, "evaluations": 50, "penalised_cycles": 7.5,
                                       "engine": "search", "seed": 8}),
    ]
    [h] = program_histories(events, {t: {"cycles_per_result": 7.5}})
    assert [(r.engine, r.seed, [s.at for s in r.steps]) for r in h.runs] == [
        ("classic", None, [1, 2]), ("classic", None, [1]), ("search", 7, [100, 300]),
        ("search", 8, [50])]
    assert h.runs[0].first == 20.0 and h.runs[0].best == 10.0
    assert h.name == "p" and h.current == {"cycles_per_result": 7.5}
    assert h.trend is Trend.PLATEAU  # one step: too few to call


def test_an_applied_program_ends_its_run_and_is_listed_as_a_version() -> None:
    t = "flux/programs/q"
    patch = {"type": "bytecode", "target": t, "reasoning": "evolved",
             "op": {"kind": "value", "value": {"hex": "464c5558" + "00" * 8,
                                               "cycles_per_result": 10, "fitness": 0.1}}}
    events = [Ev(i, "EvolutionGeneration", {"target": t, "generation": i,
                                            "fitness_after": 0.05 + 0.01 * i})
              for i in range(1, 9)]
    events.append(Ev(9, "PatchApplied", {"target": t, "type": "bytecode",
                                         "patch_hash": "sha256:" + "9" * 64,
                                         "envelope": _envelope(patch)}))
    events.append(Ev(10, "EvolutionGeneration", {"target": t, "generation": 9,
                                                 "fitness_after": 0.2}))
    [h] = program_histories(events, {})
    assert len(h.runs) == 2 and len(h.runs[0].steps) == 8
    assert h.runs[0].trend is Trend.IMPROVING
    [v] = h.versions
    assert (v.seq, v.cycles_per_result, v.fitness, v.size, v.reasoning) == \
        (9, 10.0, 0.1, 12, "evolved")
