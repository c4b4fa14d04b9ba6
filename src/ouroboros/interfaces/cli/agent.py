"""``ouro agent add NAME``: the safe default for an agent that changes its own prompt.

What is safe (docs/cli.md, "Agents that change their own prompt"):

* the agent signs with **its own key**, never root's or the runtime's;
* its delegation covers **one type and its own targets**: ``prompt`` patches to
  ``agents/NAME/*`` — not config, policy, tools, trust or gates, not other agents;
* it holds **no rights**: no ``grant`` (tool grants), no ``approve`` (it cannot approve
  its own patches);
* every prompt patch to its targets **waits for a human** (an approval rule in
  ``kernel/gates``), after passing the signature, schema, test and audit gates (injection
  markers, new URLs); ``--no-approval`` drops only this last step, on purpose.

Both changes are root-signed patches (a ``trust`` and a ``gates`` patch), so the set-up is
itself in the ledger and can be rolled back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from ouroboros.interfaces.cli.errors import CliError, usage
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
)

app = typer.Typer(cls=OuroGroup, no_args_is_help=True,
                  help="Set up an agent that may change its own prompt, safely.")

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="The agent's name (lowercase letters, digits, - and "
                               "_); also its key's name."),
    targets: str = typer.Option("", "--targets", metavar="GLOB,..",
                                help="Prompt targets it may change (default: agents/NAME/*)."),
    approval: bool = typer.Option(True, "--approval/--no-approval",
                                  help="Whether each prompt change waits for `ouro approve` "
                                       "(default: it does)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create the agent's key and let it propose changes to its own prompt only."""
    from ouroboros.kernel.dsse import new_envelope
    from ouroboros.kernel.trust import GATES_TARGET, TRUST_TARGET

    if not _NAME.fullmatch(name):
        raise usage(f"agent name {name[:40]!r} is not allowed",
                    "use 1-40 lowercase letters, digits, - or _, starting with a letter")
    globs = [t.strip() for t in targets.split(",") if t.strip()] or [f"agents/{name}/*"]
    # the kernel matches delegations with fnmatch, whose * crosses "/": a glob reaches only
    # this agent's prompts when it starts with agents/NAME/ literally ("a*", "agents/bo*",
    # "agents/?ot/*", "agents/alice/*" all reach other agents)
    own = f"agents/{name}/"
    risky = [g for g in globs if not g.startswith(own) or len(g) == len(own)]
    if risky:
        raise usage(f"--targets {', '.join(risky)} reaches beyond one agent's own prompts",
                    f"give the agent its own targets, e.g. agents/{name}/*")
    with open_runtime(home) as rt:
        roots = rt.workspace.config.get("root_keys", ["root"])
        if name in roots or name == "runtime":
            raise usage(f"{name!r} is a kernel key", "pick another name for the agent")
        created = name not in rt.keyring.names()
        existing = None if created else rt.keyring.load(name)
        if existing is not None:  # an existing key: refused before anything is written
            _check_key_holds_nothing_else(rt.value(TRUST_TARGET), name, existing.key_id)
        outcomes: list[Any] = []

        def submit(type_: str, target: str, value: Any, reason: str) -> None:
            envelope = new_envelope(rt.propose(type_, target, value=value, author="operator",
                                               reasoning=reason).canonical())
            for key in roots:
                rt.sign(envelope, key)
            outcome = rt.submit(envelope)
            if outcome.status != "applied":
                raise CliError(f"the {type_} patch was {outcome.status}: {outcome.reason}",
                               exit_code=3 if outcome.status == "rejected" else 4)
            outcomes.append(outcome)

        # The approval rule first, the delegation after: granted first, a rule that went
        # pending (or was rejected) left the agent's prompt patches applying unreviewed.
        gates = rt.value(GATES_TARGET)
        if gates is None:  # deleted before that was refused; the kernel refuses every patch
            from ouroboros.kernel.gates import GATES_MISSING

            raise CliError(f"the gates patch would be rejected: {GATES_MISSING}", exit_code=3)
        rule = {"types": ["prompt"], "targets": globs}
        rules = [r for r in gates["approval"] if r != rule]
        if approval:
            rules.append(rule)
        if rules != gates["approval"]:
            gates["approval"] = rules
            submit("gates", GATES_TARGET, gates,
                   f"prompt changes to {', '.join(globs)} "
                   + ("wait for a human" if approval else "apply without approval"))
        signer = existing or rt.keyring.new(name)
        _, public = rt.keyring.public(name)
        policy = rt.value(TRUST_TARGET)
        before = repr(policy)
        policy["keys"][signer.key_id] = {"name": name, "public": public}
        delegation = {"name": name, "keys": [signer.key_id], "types": ["prompt"],
                      "targets": globs, "threshold": 1, "rights": []}
        others = [d for d in policy["delegations"] if d["name"] != name]
        mine = [d for d in policy["delegations"] if d["name"] == name]
        policy["delegations"] = [*others, delegation] if mine != [delegation] else \
            policy["delegations"]
        if repr(policy) != before:
            try:
                submit("trust", TRUST_TARGET, policy, f"agent {name} may propose its own prompts")
            except CliError as e:
                # rejected, no patch will ever name the key made for it: it goes, so the
                # keyring holds no key for a delegation that never happened (a pending
                # patch names it and keeps it; a rerun makes a fresh one)
                if created and e.exit_code == 3:
                    rt.keyring.discard(name, signer.key_id)
                raise
    info = {"agent": name, "key": name, "key_id": signer.key_id, "key_created": created,
            "types": ["prompt"], "targets": globs, "rights": [], "approval": approval,
            "patches": [o.patch_hash for o in outcomes]}
    if as_json:
        print_json(info)
        return
    console.print(f"agent {name}: key {signer.key_id[:16]} "
                  f"({'new' if created else 'existing'}); may propose prompt patches to "
                  f"{', '.join(globs)}", markup=False)
    console.print("each one waits for `ouro approve ID` by a human" if approval else
                  "they apply once they pass the gates (no approval step)", markup=False)
    console.print(f"the agent signs with: ouro patch sign FILE --key {name}", markup=False)


def _check_key_holds_nothing_else(policy: dict[str, Any], name: str, key_id: str) -> None:
    """An agent's key may hold only its own delegation: an existing key that is a root
    key or is in another delegation keeps those powers (other types, targets, rights),
    whatever this command grants and prints."""
    if key_id in policy.get("root", {}).get("keys", []):
        raise usage(f"key {name!r} is a root key (its id is in the trust policy's roots)",
                    "an agent needs a key of its own: pick another name")
    held = [str(d.get("name")) for d in policy.get("delegations", [])
            if key_id in d.get("keys", []) and d.get("name") != name]
    if held:
        raise usage(f"key {name!r} already holds the delegation(s) {', '.join(held)}; as an "
                    "agent it would keep their types, targets and rights",
                    "pick another name for the agent, or `ouro trust revoke` those first")
