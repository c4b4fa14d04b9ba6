"""Per-token rate limits: the bucket itself (a fake clock), then floods against a real
``ouro serve`` (rate 1/s, bursts of 5, so the test does not race the clock): the flooding
token gets 429 with ``Retry-After`` and its refused requests did nothing; other tokens
are unaffected; made-up and wrong-secret tokens cannot drain a real token's bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ouroboros.interfaces.http.ratelimit import RateLimit, RateLimiter, retry_after
from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict
from ouroboros.kernel.errors import UsageError

from .live import LiveServer, start
from .test_api_kernel import setup_workspace

BURST = 5


# -- the bucket ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_passes_a_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=2.0, burst=3), clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)   # one request per 0.5 s
    assert limiter.take("b") == 0.0                  # another key has its own bucket
    clock.now += 0.25
    assert limiter.take("a") == pytest.approx(0.25)  # refused requests do not count
    clock.now += 0.25
    assert limiter.take("a") == 0.0
    clock.now += 3600                                # idle: back to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)][-1] > 0
    clock.now -= 50                                  # a clock going back refunds nothing
    assert limiter.take("a") > 0
    assert RateLimiter(RateLimit(rate=0.0), clock).take("a") == 0.0  # off
    assert retry_after(0.01) == "1" and retry_after(1.2) == "2"


@pytest.mark.parametrize(("text", "burst", "expected"), [
    ("100", None, RateLimit(100.0, 200)), ("2.5/s", None, RateLimit(2.5, 5)),
    ("off", None, RateLimit(0.0, 1)), ("0", None, RateLimit(0.0, 1)),
    ("10", 3, RateLimit(10.0, 3)), ("0.1", None, RateLimit(0.1, 1))])
def test_rate_limit_options_parse(text: str, burst: int | None, expected: RateLimit) -> None:
    assert RateLimit.parse(text, burst) == expected


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "fast", "", "1e400", "1e308", "10/m"])
def test_bad_rate_limit_options_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        RateLimit.parse(text)


def test_a_bad_rate_limit_stops_ouro_serve_before_it_binds(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "ws"
    Runtime.init(home).close()
    r = subprocess.run([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                        "--port", "0", "--rate-limit", "-3", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rate" in json.loads(r.stdout)["error"]["message"]


# -- a real server ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = setup_workspace(tmp_path_factory.mktemp("ratelimit") / "ws")
    server = start(home, "--no-scheduler", "--rate-limit", "1", "--rate-burst", str(BURST))
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


def flood(live: LiveServer, token: str, n: int, method: str = "GET",
          path: str = "/api/v1/whoami", bodies: list[bytes] | None = None,
          headers: dict[str, str] | None = None) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        with live.client(token) as c:
            return c.request(method, path, headers=headers,
                             content=bodies[i] if bodies is not None else None)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def assert_limited(responses: list[httpx.Response]) -> list[httpx.Response]:
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    for r in refused:
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
    return refused


def test_a_flooding_token_gets_429_and_another_token_is_unaffected(live: LiveServer) -> None:
    flooder, bystander = live.token("flooder", "read"), live.token("bystander", "read")
    responses = flood(live, flooder, 40)
    refused = assert_limited(responses)
    passed = [r for r in responses if r.status_code == 200]
    assert len(passed) + len(refused) == 40
    # the burst plus at most what the rate refilled while the flood ran (a loaded machine)
    assert BURST <= len(passed) <= BURST + 10
    with live.client(bystander) as c:  # its own bucket: a burst's worth passes
        assert [c.get("/api/v1/whoami").status_code for _ in range(BURST)] == [200] * BURST
    with live.client() as c:           # the health check needs no token and no bucket
        assert c.get("/api/v1/health").status_code == 200


def test_refused_submits_did_nothing(live: LiveServer) -> None:
    with Runtime.open(live.home) as rt:
        envelopes = [json.dumps(envelope_to_dict(rt.sign(rt.propose(
            "config", f"agents/flood{i}/config", value={"i": i}, reasoning="flood",
            author="alice"), "alice"))).encode() for i in range(30)]
        before = rt.refresh().seq
    responses = flood(live, live.token("submitter", "submit"), 30, "POST",
                      "/api/v1/patches", envelopes, {"Content-Type": "application/json"})
    assert_limited(responses)
    assert {r.status_code for r in responses} <= {201, 429}
    applied = {f"agents/flood{i}/config" for i, r in enumerate(responses)
               if r.status_code == 201}
    with Runtime.open(live.home) as rt:
        state = rt.refresh()
        stored = {t for t in state.values if t.startswith("agents/flood")}
        events = rt.log(since=before + 1)
    assert stored == applied  # every 201 is there, nothing refused is
    assert not [e for e in events if e.kind == "PatchRejected"]


def test_wrong_secrets_and_made_up_tokens_cannot_drain_a_real_tokens_bucket(
        live: LiveServer) -> None:
    victim = live.token("victim", "read")
    prefix, _, secret = victim.rpartition("_")
    forged = f"{prefix}_{'A' * len(secret)}"  # the victim's id, a wrong secret
    responses = flood(live, forged, 30) + flood(live, "ouro_0123456789ab_" + "B" * 43, 30)
    assert {r.status_code for r in responses} == {401}
    with live.client(victim) as c:  # the victim's burst is whole
        assert [c.get("/api/v1/whoami").status_code for _ in range(BURST)] == [200] * BURST


def test_mcp_over_http_counts_against_the_same_bucket(live: LiveServer) -> None:
    token = live.token("mcp-flooder", "submit")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "flood", "version": "0"}}}).encode()
    responses = flood(live, token, 30, "POST", "/mcp", [body] * 30,
                      {"Content-Type": "application/json",
                       "Accept": "application/json, text/event-stream"})
    assert_limited(responses)
    assert {r.status_code for r in responses} <= {200, 429}
    with live.client(token) as c:  # the API shares the bucket: still refused
        r = c.get("/api/v1/whoami")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
