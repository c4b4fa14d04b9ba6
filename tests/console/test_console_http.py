"""The console over real HTTP, without a browser: sessions, CSRF, roles, headers, and the
attacks on each (every refused request changes nothing in the ledger or the loop).

The browser's own behaviour (cookies withheld across sites, htmx, rendering) is in
test_console_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serve.live import LiveServer

from .conftest import csrf_of, logged_in, login_mac
from .workspace import Workspace

PAGES = ["/", "/pending", "/proposals", "/proposals?status=all", "/tools", "/tools/sum_ints",
         "/flux", "/findings", "/findings?window=168", "/events/0", "/verify"]


def ledger(live: LiveServer) -> list[dict[str, Any]]:
    with live.client(live.token("auditor", "read")) as c:
        out: list[dict[str, Any]] = c.get("/api/v1/log", params={"limit": 1000}).json()
    return out


def pending_ids(live: LiveServer) -> set[str]:
    with live.client(live.token("auditor", "read")) as c:
        return {p["patch_hash"] for p in c.get("/api/v1/pending").json()}


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    with logged_in(live, live.token("admin", "admin", "root")) as c:
        yield c


@pytest.fixture(scope="module")
def reader(live: LiveServer) -> Iterator[httpx.Client]:
    with logged_in(live, live.token("reader", "read")) as c:
        yield c


# -- pages and headers --------------------------------------------------------------------
def test_every_page_renders_with_the_security_headers(admin: httpx.Client) -> None:
    for path in PAGES:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        # no inline script or style at all: the CSP would block it, and none is needed
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
        assert not re.search(r"\sstyle=", r.text) and "<style" not in r.text, path


def test_without_a_session_pages_redirect_to_login_and_actions_are_refused(
        live: LiveServer, workspace: Workspace) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False) as anon:
        r = anon.get("/pending?x=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?why=login&next=/pending%3Fx%3D1"
        r = anon.get("/tools", headers={"HX-Request": "true"})
        assert r.status_code == 204 and r.headers["hx-redirect"].startswith("/login")
        before = len(ledger(live))
        ident = workspace.pending["csrf"][7:]
        r = anon.post(f"/pending/{ident}/approve", data={"csrf": "x" * 43})
        assert r.status_code == 403 and "Not logged in" in r.text
        r = anon.get("/login")
        assert r.status_code == 200 and 'type="password"' in r.text
    assert len(ledger(live)) == before and workspace.pending["csrf"] in pending_ids(live)


def test_a_console_session_is_no_credential_for_the_api(admin: httpx.Client) -> None:
    """The API takes bearer tokens only: a page cannot use the operator's cookie on it."""
    assert admin.cookies.get("ouro_console")
    r = admin.get("/api/v1/state")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = admin.post("/api/v1/pending/" + "0" * 64 + "/approve")
    assert r.status_code == 401


def test_the_api_keeps_its_json_errors_beside_the_console(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as anon:
        r = anon.get("/api/v1/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert anon.get("/api/v1/state").status_code == 401
        assert anon.get("/openapi.json").status_code == 200
        assert "/login" not in anon.get("/openapi.json").json()["paths"]
        r = anon.get("/static/console/../../etc/passwd")
        assert r.status_code == 404
        r = anon.get("/static/console/htmx.min.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers["x-content-type-options"] == "nosniff"


def test_no_state_changes_over_get(admin: httpx.Client, live: LiveServer,
                                   workspace: Workspace) -> None:
    before = len(ledger(live))
    ident = workspace.pending["csrf"][7:]
    for path in (f"/pending/{ident}/approve", f"/pending/{ident}/reject",
                 f"/proposals/{workspace.proposals['benign']}/approve", "/tools/sum_ints/run",
                 "/logout"):
        r = admin.get(path)
        assert r.status_code == 405, (path, r.status_code)
    assert len(ledger(live)) == before
    assert admin.get("/").status_code == 200  # still logged in: GET /logout did nothing


# -- login ------------------------------------------------------------------------------------
def test_login_sets_a_strict_httponly_cookie_and_a_fresh_session_id(live: LiveServer) -> None:
    token = live.token("login-user", "read")
    with httpx.Client(base_url=live.url, follow_redirects=False) as c:
        c.cookies.set("ouro_console", "planted-by-an-attacker")  # session fixation attempt
        form = c.get("/login")
        r = c.post("/login", data={"login": login_mac(form.text), "token": token,
                                   "next": "/tools"})
        assert r.status_code == 303 and r.headers["location"] == "/tools"
        cookie = next(h for h in r.headers.get_list("set-cookie")
                      if h.startswith("ouro_console="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        session_id = cookie.split(";")[0].split("=", 1)[1]
        assert session_id != "planted-by-an-attacker" and len(session_id) >= 43
        assert token not in cookie  # the browser never holds the token
        page = c.get("/tools")
        assert page.status_code == 200 and "login-user" in page.text
        assert token not in page.text
        # logging in again replaces the session: the first id is dead
        form = c.get("/login")
        r = c.post("/login", data={"login": login_mac(form.text), "token": token})
        assert r.status_code == 303
        with httpx.Client(base_url=live.url, follow_redirects=False) as old:
            old.cookies.set("ouro_console", session_id)
            assert old.get("/tools").status_code == 303


def test_bad_tokens_and_forged_login_forms_are_refused(live: LiveServer) -> None:
    good = live.token("login-user2", "read")
    with httpx.Client(base_url=live.url, follow_redirects=False) as c:
        form = c.get("/login")
        mac = login_mac(form.text)
        for token in ("", "ouro_000000000000_" + "A" * 43, good[:-1] + "x", "x" * 5000,
                      good + "\u202e", " " + good + "\x00"):
            r = c.post("/login", data={"login": mac, "token": token})
            assert r.status_code in (400, 401), (token[:20], r.status_code)
            assert "ouro_console=" not in r.headers.get("set-cookie", "")
            mac = login_mac(r.text)  # every answered form carries a fresh nonce
        # login CSRF: a form whose nonce is not this browser's (or none at all)
        with httpx.Client(base_url=live.url, follow_redirects=False) as other:
            their_mac = login_mac(other.get("/login").text)
        r = c.post("/login", data={"login": their_mac, "token": good})
        assert r.status_code == 403 and "ouro_console=" not in r.headers.get("set-cookie", "")
        r = c.post("/login", data={"token": good})
        assert r.status_code == 403
        # another site's page posting a login form
        r = c.post("/login", data={"login": mac, "token": good},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "ouro_console=" not in r.headers.get("set-cookie", "")


def test_a_login_nonce_cookie_of_other_digits_is_refused_not_a_crash(
        live: LiveServer) -> None:
    """'²' (byte B2 read as Latin-1) passes str.isdigit() but not int(): a login cookie
    made of such digits was a ValueError and a 500."""
    good = live.token("login-user-digits", "read")
    with httpx.Client(base_url=live.url, follow_redirects=False) as c:
        mac = login_mac(c.get("/login").text)
        for cookie in (b"\xb2.x", b"\xb9\xb2\xb3.abc", "\u0663".encode() + b".x"):
            r = c.post("/login", content=f"login={mac}&token={good}".encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                "Cookie": b"ouro_console_login=" + cookie})
            assert r.status_code == 403, (cookie, r.status_code, r.text[:300])
            assert "the login form expired or came from another page" in r.text
            assert "ouro_console=" not in r.headers.get("set-cookie", "")


def test_next_never_leaves_the_console(live: LiveServer) -> None:
    token = live.token("login-user3", "read")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example",
                   "javascript:alert(1)", "/%0d%0aSet-Cookie:x=1", " /tools"):
        with httpx.Client(base_url=live.url, follow_redirects=False) as c:
            form = c.get("/login", params={"next": target})
            assert "evil.example" not in form.text or target.startswith("/%")
            r = c.post("/login", data={"login": login_mac(form.text), "token": token,
                                       "next": target})
            assert r.status_code == 303
            location = r.headers["location"]
            assert location.startswith("/") and not location.startswith("//"), location
            assert "\n" not in location and "\r" not in location


def test_logout_ends_the_session_on_the_server(live: LiveServer) -> None:
    with logged_in(live, live.token("leaver", "read")) as client:
        stolen = client.cookies.get("ouro_console")
        page = client.get("/")
        r = client.post("/logout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/login?why=out"
    with httpx.Client(base_url=live.url, follow_redirects=False) as replay:
        replay.cookies.set("ouro_console", stolen or "")
        r = replay.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?why=ended")


def test_a_revoked_token_ends_its_sessions_at_once(live: LiveServer) -> None:
    from ouroboros.interfaces.http.tokens import TokenStore

    with logged_in(live, live.token("temp", "approve", "root")) as client:
        assert client.get("/pending").status_code == 200
        TokenStore(live.home).revoke("temp")
        r = client.get("/pending")
        assert r.status_code == 303 and "why=revoked" in r.headers["location"]
        assert client.get("/").status_code == 303  # the session is gone, not refused once


# -- CSRF and roles -----------------------------------------------------------------------
def test_forms_without_this_sessions_csrf_token_change_nothing(
        live: LiveServer, admin: httpx.Client, reader: httpx.Client,
        workspace: Workspace) -> None:
    ident = workspace.pending["csrf"][7:]
    before = len(ledger(live))
    other_sessions_token = csrf_of(reader.get("/").text)
    own = csrf_of(admin.get("/pending").text)
    attempts: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"other": "1"}, {}),                                    # no token at all
        ({"csrf": ""}, {}),                                      # empty
        ({"csrf": "A" * 43}, {}),                                # guessed
        ({"csrf": other_sessions_token}, {}),                    # another session's token
        ({"csrf": own[:-1] + ("A" if own[-1] != "A" else "B")}, {}),  # one character off
        ({"csrf": own}, {"Origin": "http://evil.example"}),      # right token, other origin
        ({"csrf": own}, {"Origin": "null"}),                     # sandboxed or opaque origin
        ({"csrf": own}, {"Sec-Fetch-Site": "cross-site"}),       # the browser says so
    ]
    for data, headers in attempts:
        r = admin.post(f"/pending/{ident}/approve", data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.status_code)
        assert "Refused" in r.text
    # the token in a query string or a JSON body is not a form post
    r = admin.post(f"/pending/{ident}/approve?csrf={own}")
    assert r.status_code in (403, 415)
    r = admin.post(f"/pending/{ident}/approve", json={"csrf": own})
    assert r.status_code == 415
    r = admin.post(f"/pending/{ident}/approve", files={"csrf": (None, own)})
    assert r.status_code == 415
    assert len(ledger(live)) == before
    assert workspace.pending["csrf"] in pending_ids(live)


def test_a_read_token_cannot_approve_reject_or_run(live: LiveServer, reader: httpx.Client,
                                                   workspace: Workspace) -> None:
    page = reader.get("/pending")
    assert "Approve</button>" not in page.text and "cannot approve" in page.text
    csrf = csrf_of(page.text)
    before = len(ledger(live))
    ident = workspace.pending["csrf"][7:]
    for path, data in ((f"/pending/{ident}/approve", {}),
                       (f"/pending/{ident}/reject", {"reason": "no"}),
                       (f"/proposals/{workspace.proposals['benign']}/reject", {"reason": "no"}),
                       ("/tools/sum_ints/run", {"input": "[1]"})):
        r = reader.post(path, data={"csrf": csrf, **data})
        assert r.status_code == 403 and "Not allowed" in r.text, (path, r.text[:300])
    assert len(ledger(live)) == before
    assert reader.get("/tools/sum_ints").text.count("Run in the sandbox") == 0


def test_an_approver_whose_key_may_not_approve_is_refused_by_the_kernel(
        live: LiveServer, workspace: Workspace) -> None:
    with logged_in(live, live.token("mallory", "approve", "alice")) as c:  # alice may not approve
        csrf = csrf_of(c.get("/pending").text)
        before = len(ledger(live))
        r = c.post(f"/pending/{workspace.pending['csrf'][7:]}/approve", data={"csrf": csrf})
        assert r.status_code == 403 and "Approval refused" in r.text
    assert len(ledger(live)) == before and workspace.pending["csrf"] in pending_ids(live)


def test_oversized_and_malformed_forms_are_4xx(admin: httpx.Client, live: LiveServer,
                                               workspace: Workspace) -> None:
    csrf = csrf_of(admin.get("/").text)
    ident = workspace.pending["csrf"][7:]
    before = len(ledger(live))
    r = admin.post(f"/pending/{ident}/reject", data={"csrf": csrf, "reason": "x" * 5000})
    assert r.status_code == 400 and "Too long" in r.text
    r = admin.post(f"/pending/{ident}/reject", data={"csrf": csrf, "reason": "   "})
    assert r.status_code == 400
    r = admin.post(f"/pending/{ident}/reject",
                   data={"csrf": csrf, **{f"f{i}": "1" for i in range(100)}})
    assert r.status_code == 400
    r = admin.post("/pending/not-hex/approve", data={"csrf": csrf})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    r = admin.post("/pending/" + "0" * 64 + "/approve", data={"csrf": csrf})
    assert r.status_code == 409
    r = admin.post("/tools/sum_ints/run", data={"csrf": csrf, "input": "[1, 2" + "]" * 0})
    assert r.status_code == 200 and "bad input" in r.text
    r = admin.post("/tools/sum_ints/run", data={"csrf": csrf, "input": "[" * 100 + "]" * 100})
    assert r.status_code == 200 and "nested" in r.text
    r = admin.post("/tools/NOPE/run", data={"csrf": csrf, "input": "1"})
    assert r.status_code == 400
    r = admin.post("/tools/nope/run", data={"csrf": csrf, "input": "1"})
    assert r.status_code == 404
    r = admin.post(f"/pending/{ident}/approve", content=b"\xff\xfe" * 10,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403  # no readable token in it
    assert len(ledger(live)) == before
    for path in ("/events/99999999", "/tools/nope", "/proposals/abcdef12"):
        r = admin.get(path)
        assert r.status_code == 404 and "<h1>" in r.text, path
    assert admin.get("/?kind=<script>").status_code == 400
    assert admin.get("/events/-1").status_code == 400


# -- the actions, through the same capability functions --------------------------------------
def test_approving_a_proposal_merges_it_signed_with_the_tokens_key(
        live: LiveServer, admin: httpx.Client, workspace: Workspace) -> None:
    ident = workspace.proposals["benign"]
    page = admin.get(f"/proposals/{ident}")
    assert "Approve and merge" in page.text
    r = admin.post(f"/proposals/{ident}/approve",
                   data={"csrf": csrf_of(page.text), "notes": "looks right"})
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{ident}"
    shown = admin.get(f"/proposals/{ident}")
    assert "is implemented" in shown.text and "Approve and merge" not in shown.text
    with live.client(live.token("auditor", "read")) as c:
        p = c.get(f"/api/v1/proposals/{ident}").json()
        assert p["status"] == "implemented" and p["review"]["reviewer"] == "admin"
        assert p["review"]["notes"] == "looks right"
        approvals = [e for e in c.get("/api/v1/log", params={"kind": "PatchApproved"}).json()
                     if e["payload"]["patch_hash"] == p["patch_hash"]]
        root_id = next(kid for kid, entry in c.get("/api/v1/state/kernel/trust").json()
                       ["value"]["keys"].items() if entry["name"] == "root")
        assert approvals and approvals[0]["payload"]["approver"] == root_id


def test_htmx_requests_get_fragments(admin: httpx.Client) -> None:
    csrf = csrf_of(admin.get("/").text)
    r = admin.post("/tools/sum_ints/run", data={"csrf": csrf, "input": "[40, 2]"},
                   headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and "42" in r.text
    r = admin.get("/verify", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and "verified" in r.text
    r = admin.post("/pending/" + "0" * 64 + "/approve", data={"csrf": csrf},
                   headers={"HX-Request": "true"})
    assert r.status_code == 409 and "<html" not in r.text
    assert r.headers["hx-reswap"] == "afterbegin"
