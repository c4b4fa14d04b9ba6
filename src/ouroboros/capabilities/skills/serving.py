"""Which tools solve and search offer: served ones only, unless asked for every tool.

An unproven LLM-made tool (see `evidence.py`) stays registered and can be run or described by
its exact name from the CLI, but the Solver never sees it: not in its candidates, not in
`list_tools`, and `run_binary` / `describe_binary` / `mutate_binary` answer that no such tool
is served. Search hides it too unless `include_unproven` is set.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Protocol

from .errors import MalformedTool, ToolCorrupt, ToolNotFound
from .evidence import SkillPolicy, is_served, status_of
from .retrieval import SearchHit, SkillIndex
from .spec import CASES_PATH, parse_cases


class ServingStore(Protocol):
    policy: SkillPolicy

    def list(self) -> list[Any]: ...

    def get(self, tool_id: str) -> Any: ...


def _policy(store: ServingStore) -> SkillPolicy:
    return getattr(store, "policy", None) or SkillPolicy()


def unserved(store: ServingStore) -> set[str]:
    """Tools whose current version is not served under the store's policy."""
    policy = _policy(store)
    return {v.tool_id for v in store.list() if not is_served(v.meta, policy)}


def served_version(store: ServingStore, tool_id: str) -> Any:
    """The current version if it is served.

    Raises:
        ToolNotFound: no such tool, or it is unproven (the message says so, without hinting
            at its content).
    """
    version = store.get(tool_id)
    if not is_served(version.meta, _policy(store)):
        raise ToolNotFound(f"no served tool {tool_id!r} (it is unproven: it has no "
                           "independent evidence yet)")
    return version


def status(store: ServingStore, version: Any) -> str:
    return status_of(version.meta, _policy(store))


def is_served_id(store: ServingStore, tool_id: str) -> bool:
    """Whether a tool exists and its current version is served (not one whose files no
    longer match what was registered)."""
    try:
        version = store.get(tool_id)
    except (ToolNotFound, ToolCorrupt):
        return False
    return is_served(version.meta, _policy(store))


def search_served(store: ServingStore, index: SkillIndex, query: str, k: int = 5,
                  mode: Any = "full", include_unproven: bool = False) -> list[SearchHit]:
    """The k best served tools for a query. Only the hits are checked (a few reads, however
    many tools the store holds), searching deeper while unserved ones crowd them out."""
    if include_unproven:
        return index.search(query, k=k, mode=mode)
    depth = 2 * k
    known: dict[str, bool] = {}
    while True:
        hits = index.search(query, k=depth, mode=mode)
        served = []
        for h in hits:
            if h.tool_id not in known:
                known[h.tool_id] = is_served_id(store, h.tool_id)
            if known[h.tool_id]:
                served.append(h)
        if len(served) >= k or len(hits) < depth:
            return served[:k]
        depth *= 4


def prove(store: Any, tool_id: str, raw_cases: bytes) -> Any:
    """A new version of `tool_id` with a person's cases added (source ``operator``), which
    count as independent evidence; every case must pass, old and new.

    Raises:
        MalformedTool: the cases file is not valid; ToolRejected: a case fails.
    """
    added = parse_cases(raw_cases)
    if not added:
        raise MalformedTool("the cases file holds no case")
    version = store.get(tool_id)
    spec = store.spec_of(version, include_hidden=True)
    items = json.loads(spec.files[CASES_PATH])
    known = {json.dumps([i["input"], {k: i.get(k) for k in ("expected", "error", "schema")}],
                        sort_keys=True) for i in items}
    for case in added:
        item = {**case.to_json(), "source": "operator"}
        key = json.dumps([item["input"], {k: item.get(k) for k in ("expected", "error",
                                                                   "schema")}], sort_keys=True)
        if key not in known:
            known.add(key)
            items.append(item)
    files = {**spec.files, CASES_PATH: json.dumps(items, indent=1, ensure_ascii=False).encode()}
    return store.add(replace(spec, files=files), parent=version.fingerprint)
