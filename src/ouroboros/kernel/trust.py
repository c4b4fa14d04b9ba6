"""The trust policy (after TUF delegations): who may sign which patch types and targets.

Root keys and their threshold are set at ``ouro init``; the policy itself is the state
target ``kernel/trust`` and changes only through a ``trust`` patch meeting the root
threshold. Every other signer, the runtime's own key included, is bounded by delegations.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

TRUST_TARGET = "kernel/trust"
GATES_TARGET = "kernel/gates"
SCHEMAS_TARGET = "kernel/schemas"


@dataclass(frozen=True)
class Authorisation:
    ok: bool
    root: bool
    rights: frozenset[str]
    reason: str = ""
    delegations: tuple[str, ...] = ()


def _glob(target: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(target, g) for g in globs)


def public_keys(policy: dict[str, Any]) -> dict[str, str]:
    return {kid: k["public"] for kid, k in policy["keys"].items()}


def key_names(policy: dict[str, Any]) -> dict[str, str]:
    return {kid: k.get("name", kid[:12]) for kid, k in policy["keys"].items()}


def authorise(policy: dict[str, Any], patch_type: str, target: str, root_only: bool,
              valid: frozenset[str]) -> Authorisation:
    """Decide whether the valid signatures ``valid`` suffice for this type and target."""
    root_keys = set(policy["root"]["keys"])
    root_threshold = int(policy["root"]["threshold"])
    root_sigs = len(valid & root_keys)
    is_root = root_sigs >= root_threshold
    if is_root:
        return Authorisation(True, True, frozenset({"grant", "approve"}), delegations=("root",))
    if root_only:
        return Authorisation(False, False, frozenset(),
                             f"{patch_type} patches need {root_threshold} root signature(s), "
                             f"found {root_sigs}")
    satisfied: list[str] = []
    rights: set[str] = set()
    closest = ""
    for d in policy["delegations"]:
        if patch_type not in d["types"] or not _glob(target, d["targets"]):
            continue
        have = len(valid & set(d["keys"]))
        if have >= int(d["threshold"]):
            satisfied.append(d["name"])
            rights.update(d.get("rights", []))
        elif have and not closest:
            closest = (f"delegation {d['name']!r} needs {d['threshold']} signature(s) from its "
                       f"keys, found {have}")
    if satisfied:
        return Authorisation(True, False, frozenset(rights), delegations=tuple(satisfied))
    names = key_names(policy)
    who = ", ".join(sorted(names.get(k, k[:12]) for k in valid)) or "no trusted key"
    return Authorisation(False, False, frozenset(),
                         closest or f"no delegation lets {who} sign {patch_type} patches "
                         f"for {target!r}")


def default_policy(root: tuple[str, str], runtime: tuple[str, str]) -> dict[str, Any]:
    """Root: threshold 1 with the init key. The runtime key may sign what capabilities
    propose (skills, bytecode, routing, and file proposals and skill reviews, which always
    await approval)."""
    (root_id, root_pub), (rt_id, rt_pub) = root, runtime
    return {
        "keys": {root_id: {"name": "root", "public": root_pub},
                 rt_id: {"name": "runtime", "public": rt_pub}},
        "root": {"keys": [root_id], "threshold": 1},
        "delegations": [{"name": "runtime", "keys": [rt_id],
                         "types": ["skill", "skill_review", "bytecode", "routing", "file"],
                         "targets": ["*"], "threshold": 1, "rights": []}],
    }
