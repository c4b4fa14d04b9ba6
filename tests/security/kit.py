"""Helpers shared by the security tests."""

from __future__ import annotations

from ouroboros.kernel import Runtime


def grant_key(rt: Runtime, name: str, types: list[str], rights: list[str] | None = None) -> None:
    """Create key ``name`` and trust it (root-signed) for ``types`` on every target."""
    rt.keyring.new(name)
    kid, public = rt.keyring.public(name)
    policy = rt.value("kernel/trust")
    policy["keys"][kid] = {"name": name, "public": public}
    policy["delegations"].append({"name": name, "keys": [kid], "types": types,
                                  "targets": ["*"], "threshold": 1, "rights": rights or []})
    out = rt.submit(rt.sign(rt.propose("trust", "kernel/trust", value=policy, reasoning="grant",
                                       author="operator"), "root"))
    assert out.status == "applied", out


def lift_breaker(rt: Runtime) -> None:
    """Raise the breaker threshold out of reach (root-signed): for modules that send many
    rejected patches under one key to test something else (the breaker has its own tests)."""
    gates = rt.value("kernel/gates")
    gates["breaker"]["threshold"] = 10_000
    out = rt.submit(rt.sign(rt.propose("gates", "kernel/gates", value=gates,
                                       reasoning="no breaker here", author="operator"), "root"))
    assert out.status == "applied", out
