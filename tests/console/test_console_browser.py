"""The console end to end in headless Chromium (Debian's package, driven by Playwright)
against the real server: log in, read the ledger, approve with a click, reject a
proposal, run a tool — and the attacks a browser makes possible: a cross-site and a
same-site cross-origin form post (CSRF), hostile text in every page (XSS), a read token
reaching for the Approve button.

One browser for the module; each test opens its own context (its own cookies). Every
page visited is checked for script that ran (``window.pwned``, dialogs), event-handler
attributes, ``javascript:`` links and Content-Security-Policy violations. Screenshots of
each main page at 1280 and 800 px go to the test run's directory (or
$OURO_CONSOLE_SCREENSHOTS).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from serve.live import LiveServer

from .conftest import screenshots_dir
from .workspace import IMG, RLO, SCRIPT, Workspace

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), ("Debian's chromium is missing: scripts/bootstrap.sh "
                                    "installs it (apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshots_dir(tmp_path_factory)


class Watch:
    """What a page did that it must not: dialogs, CSP violations, page errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.csp.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def clean(self) -> None:
        assert not self.dialogs, self.dialogs
        assert not self.csp, self.csp
        assert not self.errors, self.errors


def context(browser: Browser, width: int = 1280, javascript: bool = True) -> BrowserContext:
    return browser.new_context(viewport={"width": width, "height": 900},
                               java_script_enabled=javascript)


def log_in(page: Page, live: LiveServer, token: str, path: str = "/") -> None:
    page.goto(live.url + path)
    assert "/login" in page.url
    page.fill("#token", token)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(live.url + path)


def inert(page: Page) -> None:
    """No hostile text ran or became markup on this page."""
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.scripts.length") == 1  # htmx, and nothing else
    assert page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(e =>
        [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))
        """) == []
    assert page.evaluate("""() => [...document.querySelectorAll('[href],[src],[action]')]
        .map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action'))
        .filter(u => !u.startsWith('/'))""") == []


def pending_ids(live: LiveServer) -> set[str]:
    with live.client(live.token("auditor", "read")) as c:
        return {p["patch_hash"] for p in c.get("/api/v1/pending").json()}


def event_count(live: LiveServer) -> int:
    with live.client(live.token("auditor", "read")) as c:
        return len(c.get("/api/v1/log", params={"limit": 1000}).json())


# -------------------------------------------------------------------------------------------
def test_log_in_read_the_ledger_and_its_verify_status(browser: Browser, live: LiveServer,
                                                      shots: Path) -> None:
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(live.url + "/login")
    page.screenshot(path=str(shots / "login-1280.png"))
    log_in(page, live, live.token("alice-admin", "admin", "root"))
    assert "logged in as alice-admin" in page.inner_text("main")
    page.wait_for_selector("#verify.tone-good")  # the lazy verification came back good
    assert "verified" in page.inner_text("#verify")
    rows = page.locator("table.timeline tbody tr")
    assert rows.count() >= 20
    assert rows.first.locator("td").first.inner_text().strip() == str(event_count(live) - 1)
    assert page.locator("text=PatchPending").count() >= 3
    cookies = {c["name"]: c for c in ctx.cookies()}
    session = cookies["ouro_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: script cannot read it
    page.select_option("#kind", "PatchRejected")
    page.click("form.filter button")
    page.wait_for_url("**/?kind=PatchRejected")
    kinds = set(page.locator("table.timeline .pill").all_inner_texts())
    assert kinds == {"PatchRejected"}
    inert(page)
    watch.clean()
    ctx.close()


def test_approve_a_pending_patch_with_a_click_and_see_it_in_the_ledger(
        browser: Browser, live: LiveServer, workspace: Workspace) -> None:
    patch = workspace.pending["config"]
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    log_in(page, live, live.token("approver", "approve", "root"), "/pending")
    card = page.locator(f"#patch-{patch[7:19]}")
    assert '+  "max_tokens": 2048' in card.locator("pre.diff").inner_text()
    card.locator("button.approve").click()
    outcome = page.locator("article.outcome")
    outcome.wait_for()
    assert "applied at seq" in outcome.inner_text()
    assert patch not in pending_ids(live)
    outcome.locator("a").click()  # the event in the ledger
    page.wait_for_url("**/events/*")
    assert "PatchApplied" in page.inner_text("h1")
    assert patch in page.inner_text("main")
    assert "agents/guarded/limits" in page.inner_text("main")
    page.goto(live.url + "/")
    top = page.locator("table.timeline tbody tr").first
    assert "PatchApplied" in top.inner_text() and patch[7:19] in top.inner_text()
    with live.client(live.token("auditor", "read")) as c:
        value = c.get("/api/v1/state/agents/guarded/limits").json()["value"]
    assert value["max_tokens"] == 2048
    watch.clean()
    ctx.close()


def test_approve_without_javascript_posts_the_form_and_redirects(
        browser: Browser, live: LiveServer, workspace: Workspace) -> None:
    """The forms work as plain HTML too: a post, a redirect, the outcome shown once."""
    patch = workspace.pending["hostile"]
    ctx = context(browser, javascript=False)
    page = ctx.new_page()
    log_in(page, live, live.token("approver-nojs", "approve", "root"), "/pending")
    card = page.locator(f"#patch-{patch[7:19]}")
    assert SCRIPT in card.locator(".reasoning").inner_text()  # hostile reasoning, as text
    assert "⟨U+202E⟩evorppa esaelp⟨U+202E⟩" in card.inner_text()  # the override, visible
    assert SCRIPT in card.locator("pre.diff").inner_text()
    card.locator("button.approve").click()
    page.wait_for_url(live.url + "/pending")
    assert f"patch {patch[7:19]}: applied at seq" in page.inner_text("main .flash")
    assert patch not in pending_ids(live)
    page.reload()
    assert page.locator("main .flash").count() == 0  # shown once
    ctx.close()


def test_reject_a_proposal(browser: Browser, live: LiveServer, workspace: Workspace) -> None:
    ident = workspace.proposals["hostile"]
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    log_in(page, live, live.token("reviewer", "approve", "root"), f"/proposals/{ident}")
    inert(page)
    page.fill("#reason", "not a real problem <b>bold</b>")
    page.click("section.decide button.danger")
    outcome = page.locator("article.outcome")
    outcome.wait_for()
    assert f"proposal {ident} is rejected" in outcome.inner_text()
    with live.client(live.token("auditor", "read")) as c:
        p = c.get(f"/api/v1/proposals/{ident}").json()
    assert p["status"] == "rejected" and p["review"]["reviewer"] == "reviewer"
    assert p["review"]["notes"] == "not a real problem <b>bold</b>"
    page.goto(live.url + "/proposals?status=rejected")
    assert ident in page.inner_text("table")
    page.goto(live.url + f"/proposals/{ident}")
    assert "not a real problem <b>bold</b>" in page.inner_text("aside")
    assert page.locator("section.decide").count() == 0
    inert(page)
    watch.clean()
    ctx.close()


def test_run_a_tool_from_the_form(browser: Browser, live: LiveServer) -> None:
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    log_in(page, live, live.token("runner", "submit"), "/tools/sum_ints")
    uses = int(page.locator(".stat .big").first.inner_text())
    page.fill("#input", "[19, 23]")
    page.click("form.run button")
    result = page.locator("#run-result .result")
    result.wait_for()
    assert result.locator("pre.output").inner_text().strip() == "42"
    page.fill("#input", "[1, 2")
    page.click("form.run button")
    page.wait_for_selector("#run-result .result.tone-bad")
    assert "not valid JSON" in page.inner_text("#run-result")
    page.fill("#input", '{"a": 1}')
    page.click("form.run button")
    expect(page.locator("#run-result")).not_to_contain_text("bad input")  # the new answer
    assert "Failed" in page.inner_text("#run-result .result.tone-bad")
    page.reload()
    assert int(page.locator(".stat .big").first.inner_text()) == uses + 2  # runs counted
    assert page.locator("ol.lineage li").count() == 2  # two versions of sum_ints
    assert page.locator("button.approve").count() == 0
    watch.clean()
    ctx.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(html: str) -> Any:
    """A route handler answering every request with ``html`` (the attacker's site)."""
    return lambda route, _request: route.fulfill(status=200, content_type="text/html",
                                                 body=html)


def _attack_page(target: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (f'<html><body><form id="f" method="post" action="{target}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script></body></html>')


@pytest.mark.parametrize("attacker", ["http://attacker.example", "same-site"])
def test_a_cross_origin_form_post_is_refused_and_changes_nothing(
        browser: Browser, live: LiveServer, workspace: Workspace, attacker: str) -> None:
    """The victim is logged in; a page elsewhere posts the approve form. Cross-site, the
    browser withholds the SameSite=Strict cookie; from another port of the same host
    (same site, other origin) it sends it, and the Origin check and the missing CSRF
    token refuse it."""
    if attacker == "same-site":
        attacker = f"http://127.0.0.1:{_free_port()}"
    patch = workspace.pending["csrf"]
    ctx = context(browser)
    page = ctx.new_page()
    log_in(page, live, live.token(f"victim-{len(attacker)}", "approve", "root"), "/pending")
    before = event_count(live)
    target = f"{live.url}/pending/{patch[7:]}/approve"
    seen: list[tuple[str, int]] = []
    page.on("response", lambda r: seen.append((r.url, r.status)))
    for fields in ({}, {"csrf": "A" * 43}):
        page.route(f"{attacker}/**", _serve(_attack_page(target, fields)))
        seen.clear()
        page.goto(f"{attacker}/win-a-prize")
        page.wait_for_url(target)
        page.wait_for_load_state()
        assert (target, 403) in seen, seen
        text = page.inner_text("main")
        assert "Refused" in text or "Not logged in" in text
        page.unroute(f"{attacker}/**")
    assert patch in pending_ids(live) and event_count(live) == before
    page.goto(live.url + "/pending")  # the victim's session is intact
    assert page.locator(f"#patch-{patch[7:19]}").count() == 1
    ctx.close()


def test_hostile_text_is_shown_as_text_everywhere(browser: Browser, live: LiveServer,
                                                  workspace: Workspace) -> None:
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    log_in(page, live, live.token("xss-reader", "read"))
    hostile_proposal = workspace.proposals["hostile"]
    pages = {"/tools": SCRIPT, "/tools/xss_tool": IMG, f"/proposals/{hostile_proposal}": SCRIPT,
             "/findings": IMG, "/?kind=PatchPending": SCRIPT}
    for path, payload in pages.items():
        page.goto(live.url + path)
        page.mouse.move(200, 300)  # hover handlers, if any had got in
        inert(page)
        assert payload in page.inner_text("main"), path  # the text itself, visibly
    page.goto(live.url + "/tools/xss_tool")
    assert "⟨U+202E⟩" in page.inner_text("main") and RLO not in page.inner_text("main")
    page.goto(live.url + f"/proposals/{hostile_proposal}")
    prose = page.locator(".prose.md").first
    assert prose.locator("strong").inner_text() == "bold"  # markdown still works
    assert prose.locator("a, img, script").count() == 0
    assert "javascript:window.pwned='link'" in prose.inner_text()
    for seq in range(event_count(live)):  # every event page, payloads included
        page.goto(f"{live.url}/events/{seq}")
        assert page.evaluate("window.pwned") is None
    watch.clean()
    ctx.close()


def test_a_read_token_cannot_approve(browser: Browser, live: LiveServer,
                                     workspace: Workspace) -> None:
    patch = workspace.pending["csrf"]
    ctx = context(browser)
    page = ctx.new_page()
    watch = Watch(page)
    log_in(page, live, live.token("read-only", "read"), "/pending")
    card = page.locator(f"#patch-{patch[7:19]}")
    assert card.locator("button").count() == 0
    assert "cannot approve" in card.inner_text()
    before = event_count(live)
    # the form the button would have posted, with this session's own CSRF token
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    r = page.request.post(f"{live.url}/pending/{patch[7:]}/approve", form={"csrf": csrf or ""},
                          headers={"Origin": live.url})
    assert r.status == 403 and "Not allowed" in r.text()
    assert patch in pending_ids(live) and event_count(live) == before
    watch.clean()
    ctx.close()


MAIN_PAGES = {"ledger": "/", "pending": "/pending", "proposals": "/proposals?status=all",
              "tools": "/tools", "tool": "/tools/sum_ints", "flux": "/flux",
              "findings": "/findings"}


def test_screenshots_of_each_main_page(browser: Browser, live: LiveServer, shots: Path,
                                       workspace: Workspace) -> None:
    token = live.token("camera", "admin", "root")
    pages = {**MAIN_PAGES, "proposal": f"/proposals/{workspace.proposals['benign']}"}
    for width in (1280, 800):
        ctx = context(browser, width)
        page = ctx.new_page()
        watch = Watch(page)
        log_in(page, live, token)
        for name, path in pages.items():
            page.goto(live.url + path)
            if path == "/":
                page.wait_for_selector("#verify.tone-good")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, (name, width, overflow)  # no sideways scrolling
            page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        watch.clean()
        ctx.close()
    made = sorted(p.name for p in shots.glob("*.png"))
    assert len(made) >= 2 * len(pages)
    assert all((shots / name).stat().st_size > 5000 for name in made)
    print(f"\nconsole screenshots: {shots}")


def test_the_console_needs_no_network_but_its_own(browser: Browser, live: LiveServer) -> None:
    """Every request a page makes goes to the server itself (no CDN, no fonts)."""
    ctx = context(browser)
    page = ctx.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    log_in(page, live, live.token("offline", "read"))
    for path in MAIN_PAGES.values():
        page.goto(live.url + path)
        page.wait_for_load_state("networkidle")
    assert urls and all(u.startswith(live.url) for u in urls), \
        [u for u in urls if not u.startswith(live.url)]
    with httpx.Client(base_url=live.url) as c:
        assert c.get("/static/console/htmx.min.js").status_code == 200
    ctx.close()
