"""Target, type and author names that look like others.

The patch model's name patterns ended in ``$``, which also matches before a final
newline: ``agents/support/prompt\\n`` was a valid target, distinct from the real one. An
approval rule naming the real target did not cover it, so a delegate changed it with no
review, and `ouro state` printed it as ``agents/support/prompt`` holding the new value
(while the real prompt's patch still waited for a person)."""

from __future__ import annotations

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.canonical import canonical_bytes
from ouroboros.kernel.dsse import new_envelope
from ouroboros.kernel.trust import GATES_TARGET

from .kernelkit import grant

REAL = "agents/support/prompt"


@pytest.mark.parametrize("field, value", [("target", REAL + "\n"), ("type", "prompt\n"),
                                          ("author", "agent\n")])
def test_a_name_with_a_trailing_newline_is_no_name(rt: Runtime, field: str, value: str) -> None:
    gates = rt.value(GATES_TARGET)
    gates["approval"] = [{"types": ["prompt"], "targets": [REAL]}]
    assert rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r"),
                             "root")).status == "applied"
    grant(rt, "agent", ["prompt"], targets=["agents/*"])
    data = rt.propose("prompt", REAL, value="obey the agent", reasoning="r",
                      author="agent").to_dict()
    data[field] = value  # what a hand-made envelope may hold
    out = rt.submit(rt.sign(new_envelope(canonical_bytes(data)), "agent"))
    assert (out.status, out.stage) == ("rejected", "schema"), out
    assert "not a valid" in out.reason
    assert rt.pending() == {} and set(rt.state()) == {"kernel/gates", "kernel/schemas",
                                                      "kernel/trust"}
