"""The trust policy (after TUF delegations): who may sign which patch types and targets.

Root keys and their threshold are set at ``ouro init``; the policy itself is the state
target ``kernel/trust`` and changes only through a ``trust`` patch meeting the root
threshold. Every other signer, the runtime's own key included, is bounded by delegations,
which may expire. A revoked key stays listed under ``revoked`` so its signatures are
refused by name rather than as an unknown key. Thresholds count distinct public keys, and
a key id must be the SHA-256 of its public key (the ``trust.keys`` test enforces it), so
one key can never be counted twice under two ids.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ouroboros.kernel.clock import parse_iso

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
    """Key id -> public key of every trusted (not revoked) key."""
    revoked = policy.get("revoked", {})
    return {kid: k["public"] for kid, k in policy["keys"].items() if kid not in revoked}


def key_names(policy: dict[str, Any]) -> dict[str, str]:
    names = {kid: k.get("name", kid[:12]) for kid, k in policy["keys"].items()}
    names.update({kid: r.get("name", kid[:12]) for kid, r in policy.get("revoked", {}).items()
                  if kid not in names})
    return names


def distinct_keys(policy: dict[str, Any], key_ids: Iterable[str]) -> int:
    """How many distinct public keys ``key_ids`` name (unknown ids count for nothing)."""
    keys = policy["keys"]
    return len({keys[k]["public"] for k in key_ids if k in keys})


def expired(delegation: dict[str, Any], now: datetime) -> bool:
    until = delegation.get("expires")
    return bool(until) and parse_iso(str(until)) <= now


def authorise(policy: dict[str, Any], patch_type: str, target: str, root_only: bool,
              valid: frozenset[str], now: datetime) -> Authorisation:
    """Decide whether the valid signatures ``valid`` suffice for this type and target."""
    root_keys = set(policy["root"]["keys"])
    root_threshold = int(policy["root"]["threshold"])
    root_sigs = distinct_keys(policy, valid & root_keys)
    if root_sigs >= root_threshold:
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
        have = distinct_keys(policy, valid & set(d["keys"]))
        if have and expired(d, now):
            closest = closest or f"delegation {d['name']!r} expired at {d['expires']}"
            continue
        if have >= int(d["threshold"]):
            satisfied.append(d["name"])
            rights.update(d.get("rights", []))
        elif have and not closest:
            closest = (f"delegation {d['name']!r} needs {d['threshold']} signature(s) from "
                       f"distinct keys, found {have}")
    if satisfied:
        return Authorisation(True, False, frozenset(rights), delegations=tuple(satisfied))
    names = key_names(policy)
    who = ", ".join(sorted(names.get(k, k[:12]) for k in valid)) or "no trusted key"
    return Authorisation(False, False, frozenset(),
                         closest or f"no delegation lets {who} sign {patch_type} patches "
                         f"for {target!r}")


class PolicyView:
    """What the signature gate derives from one trust policy object, computed once per
    object: the trusted public keys and, for a policy whose delegations never expire, each
    authorisation it has decided (a pure function of type, target and signers then).

    State values are never changed in place (a trust patch folds a new object in), so
    keeping the object and checking identity, as the schema and audit caches do, ties
    every entry to exactly the policy it was made from."""

    _MAX = 4096

    def __init__(self, policy: dict[str, Any]) -> None:
        self.policy = policy
        self.public = public_keys(policy)
        # With an expiry anywhere, a decision depends on the time: decide every time.
        self._timeless = not any(d.get("expires") for d in policy["delegations"])
        self._decided: dict[tuple[str, str, bool, frozenset[str]], Authorisation] = {}

    def authorise(self, patch_type: str, target: str, root_only: bool,
                  valid: frozenset[str], now: datetime) -> Authorisation:
        if not self._timeless:
            return authorise(self.policy, patch_type, target, root_only, valid, now)
        key = (patch_type, target, root_only, valid)
        hit = self._decided.get(key)
        if hit is None:
            hit = authorise(self.policy, patch_type, target, root_only, valid, now)
            if len(self._decided) >= self._MAX:
                self._decided.clear()
            self._decided[key] = hit
        return hit


_VIEWS: dict[int, PolicyView] = {}


def policy_view(policy: dict[str, Any]) -> PolicyView:
    """The view of ``policy`` (by identity; the view holds the object, so its id is not
    reused while the entry lives)."""
    view = _VIEWS.get(id(policy))
    if view is None or view.policy is not policy:
        if len(_VIEWS) >= 16:
            _VIEWS.clear()
        view = _VIEWS[id(policy)] = PolicyView(policy)
    return view


def may_approve(policy: dict[str, Any], key_id: str, patch_type: str, target: str,
                now: datetime) -> str | None:
    """``None`` if ``key_id`` may approve (or reject) this patch, else the reason not: a
    root key may approve anything; another key only within a live delegation that has the
    ``approve`` right and covers the patch's type and target."""
    if key_id in policy.get("revoked", {}):
        return f"key {key_names(policy).get(key_id, key_id[:12])} was revoked"
    if key_id in policy["root"]["keys"]:
        return None
    scoped = [d for d in policy["delegations"]
              if key_id in d["keys"] and "approve" in d.get("rights", [])]
    if not scoped:
        return "it is neither a root key nor in a delegation with the 'approve' right"
    live = [d for d in scoped if not expired(d, now)]
    if not live:
        return f"its delegation {scoped[0]['name']!r} expired at {scoped[0]['expires']}"
    if not any(patch_type in d["types"] and _glob(target, d["targets"]) for d in live):
        return (f"its 'approve' right covers {', '.join(sorted({t for d in live for t in d['types']}))} "
                f"patches on {', '.join(sorted({g for d in live for g in d['targets']}))}, "
                f"not {patch_type} on {target!r}")
    return None


def policy_problems(policy: dict[str, Any]) -> list[str]:
    """What makes a trust policy unsafe even though it fits the schema: a key id that is
    not the SHA-256 of its public key, two ids for one public key, references to keys
    that are not listed, thresholds no set of keys can meet."""
    out: list[str] = []
    keys = policy["keys"]
    seen: dict[str, str] = {}
    for kid, k in keys.items():
        try:
            digest = hashlib.sha256(bytes.fromhex(k["public"])).hexdigest()
        except ValueError:
            digest = ""
        if kid != digest:
            out.append(f"key id {kid[:16]}… is not the SHA-256 of its public key")
        if k["public"] in seen:
            out.append(f"public key listed twice (ids {seen[k['public']][:12]}… and {kid[:12]}…)")
        seen[k["public"]] = kid
    revoked = policy.get("revoked", {})
    root = policy["root"]
    for kid in root["keys"]:
        if kid not in keys:
            out.append(f"root key {kid[:12]}… is not in keys")
        if kid in revoked:
            out.append(f"root key {kid[:12]}… is revoked")
    if int(root["threshold"]) > len(set(root["keys"]) - set(revoked)):
        out.append(f"root threshold {root['threshold']} exceeds the root keys")
    for d in policy["delegations"]:
        unknown = [k for k in d["keys"] if k not in keys]
        if unknown:
            out.append(f"delegation {d['name']!r} names unknown key {unknown[0][:12]}…")
        if int(d["threshold"]) > len(set(d["keys"])):
            out.append(f"delegation {d['name']!r}: threshold {d['threshold']} exceeds its "
                       f"{len(set(d['keys']))} key(s)")
        if d.get("expires") is not None:
            try:
                parse_iso(str(d["expires"]))
            except ValueError:
                out.append(f"delegation {d['name']!r}: expires is not a UTC time")
    return out


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
        "revoked": {},
    }


def approval_statement(patch_hash: str) -> bytes:
    """What an approver signs: the patch hash names the patch and, through it, the ledger."""
    return b"ouroboros-approve:" + patch_hash.encode()


def resume_statement(ledger_id: str, subject: str, paused_until: str) -> bytes:
    """What root keys sign to lift one pause of one breaker in one ledger."""
    return f"ouroboros-resume:{ledger_id}:{subject}:{paused_until}".encode()


def with_grant(policy: dict[str, Any], name: str, keys: dict[str, str], types: list[str],
               targets: list[str], threshold: int, rights: list[str],
               expires: str | None) -> dict[str, Any]:
    """A copy of ``policy`` with delegation ``name`` (replacing one of that name) letting
    ``threshold`` of ``keys`` (key id -> public key) sign ``types`` on ``targets``."""
    if not keys or not types or not targets:
        raise ValueError("a grant needs at least one key, one type and one target")
    if not 1 <= threshold <= len(keys):
        raise ValueError(f"threshold {threshold} must be between 1 and the {len(keys)} key(s)")
    revoked = sorted(k for k in keys if k in policy.get("revoked", {}))
    if revoked:
        raise ValueError(f"key {revoked[0][:12]}… was revoked; a revoked key stays revoked")
    out = {**policy, "keys": dict(policy["keys"]), "revoked": dict(policy.get("revoked", {}))}
    names = {kid: n for n, kid in zip(_key_labels(name, len(keys)), keys, strict=True)}
    for kid, public in keys.items():
        out["keys"].setdefault(kid, {"name": names[kid], "public": public})
    delegation: dict[str, Any] = {"name": name, "keys": list(keys), "types": types,
                                  "targets": targets, "threshold": threshold, "rights": rights}
    if expires is not None:
        delegation["expires"] = expires
    out["delegations"] = [d for d in policy["delegations"] if d["name"] != name] + [delegation]
    return out


def _key_labels(name: str, n: int) -> list[str]:
    return [name] if n == 1 else [f"{name}.{i}" for i in range(1, n + 1)]


def with_revocation(policy: dict[str, Any], key_id: str, at: str, reason: str
                    ) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``policy`` where ``key_id`` is revoked: gone from the root keys and every
    delegation (a delegation left unable to meet its threshold goes too), and listed
    under ``revoked`` so its signatures are refused by name. Also returns what changed."""
    if key_id not in policy["keys"]:
        raise ValueError(f"key {key_id[:12]}… is not in the trust policy")
    out = {**policy, "keys": dict(policy["keys"]), "revoked": dict(policy.get("revoked", {}))}
    entry = out["keys"].pop(key_id)
    out["revoked"][key_id] = {"name": entry.get("name", key_id[:12]), "public": entry["public"],
                              "at": at, "reason": reason}
    notes: list[str] = []
    root = policy["root"]
    if key_id in root["keys"]:
        left = [k for k in root["keys"] if k != key_id]
        if len(left) < int(root["threshold"]) or not left:
            raise ValueError("revoking this root key would leave fewer root keys than the "
                             "root threshold; add a root key first")
        out["root"] = {**root, "keys": left}
        notes.append("removed from the root keys")
    delegations = []
    for d in policy["delegations"]:
        if key_id not in d["keys"]:
            delegations.append(d)
            continue
        left = [k for k in d["keys"] if k != key_id]
        if len(left) < int(d["threshold"]):
            notes.append(f"delegation {d['name']!r} removed (its threshold can no longer be met)")
            continue
        delegations.append({**d, "keys": left})
        notes.append(f"removed from delegation {d['name']!r}")
    out["delegations"] = delegations
    return out, notes
