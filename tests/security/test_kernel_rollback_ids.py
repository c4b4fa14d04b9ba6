"""A rollback names the patch it undoes by a prefix of its hash; a prefix of a few digits
names whatever patch happens to start with them.

`ouro approve` and `ouro reject` ask for at least 4 hex digits for this reason; `ouro
rollback --patch` took one, so a typo (`--patch 7`) undid the one live patch starting
with 7, which the operator never named."""

from __future__ import annotations

import pytest

from ouroboros.kernel import Runtime, UsageError

from .kernelkit import ouro, routing


def test_a_rollback_needs_four_hex_digits_of_the_patch(rt: Runtime) -> None:
    routing(rt, 1)
    h = rt.log(kind="PatchApplied")[-1].payload["patch_hash"]
    before = len(rt.log())
    for short in (h[7:8], h[7:10], "sha256:" + h[7:9], h[7:10].upper()):
        with pytest.raises(UsageError, match="at least 4 hex digits"):
            rt.rollback(patch=short)
        r = ouro("rollback", "--patch", short, home=rt.home)
        assert r.returncode == 2 and "at least 4 hex digits" in r.stderr, r
        assert "Traceback" not in r.stderr
    assert len(rt.log()) == before and rt.value("agents/a/routing") == {"w": 0}
    [out] = rt.rollback(patch=h[7:11])
    assert out.status == "applied" and rt.value("agents/a/routing") is None
