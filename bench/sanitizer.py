"""Benchmark of the sanitizer: recall, kept text and speed, side by side with its baselines.

Three sanitizers in one run, on one core:

* ``default-deny`` — the current sanitizer (``ouroboros.capabilities.improve.intake.sanitizer``);
* ``v1`` — the previous, rule-list sanitizer (``bench/sanitizer_v1.py``), the baseline;
* ``detect-secrets`` — what a user would pick off the shelf: every detect-secrets 1.5
  plugin over the text, each reported secret replaced (recall and kept text only on a
  sample for speed, it is ~100x slower);

and ``copy`` — copying each event with no sanitizing at all, the physical floor.

Measured: recall on the labelled secrets corpus (``tests/security/data/secrets``), bare
and in six contexts (a secret counts as caught only if no 8-character window of it
survives); the share of harmless text kept (tokens, whole lines, error templates);
events/s on realistic synthetic telemetry, on all-unique messages and on events that
all carry secrets; the worst adversarial 4 KB string.

Usage: python bench/sanitizer.py [--events N] [--out FILE]
Targets: recall 100 % in every context; default-deny ≥ 50,000 events/s (realistic).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import improve as improve_bench  # noqa: E402 - bench/improve.py: event mixes, machine info
import sanitizer_v1  # noqa: E402
from ouroboros.capabilities.improve.analysis.aggregate import _pattern_of  # noqa: E402
from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer  # noqa: E402

corpus = importlib.import_module("tests.security.secrets_corpus")
_PLACEHOLDER = re.compile(r"<[a-z]+(?::[a-z0-9\-]+)?>|\[(?:REDACTED_KEY|EXTERNAL_IP|PATH|EMAIL)\]")
TextFn = Callable[[str], str]


class DetectSecretsOnly:
    """detect-secrets' plugins as a sanitizer: replace every value they report."""

    def __init__(self) -> None:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
        self.plugins = [cls() for cls in classes]

    def text(self, text: str) -> str:
        found: set[str] = set()
        for plugin in self.plugins:
            for value in plugin.analyze_string(text):
                if isinstance(value, str) and len(value.strip()) >= 4:
                    found.add(value.strip())
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, "<secret>")
        return text

    def event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.text(v) if isinstance(v, str) else v for k, v in event.items()}


def leaked(secret: Any, text: str, out: str) -> bool:
    visible = _PLACEHOLDER.sub(" ", out)
    context = text.replace(secret.text, " ")
    core = secret.secret
    windows = {core[i : i + 8] for i in range(max(1, len(core) - 7))}
    return any(w in visible and w not in context for w in windows)


def recall(fn: TextFn, secrets: list[Any], kinds: Mapping[str, Any]) -> dict[str, float]:
    caught: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for secret in secrets:
        for where, text in corpus.contexts(secret, kinds[secret.kind]):
            seen[where] += 1
            caught[where] += not leaked(secret, text, fn(text))
    out = {where: caught[where] / seen[where] for where in seen}
    out["all"] = sum(caught.values()) / sum(seen.values())
    kinds_missed = {s.kind for s in secrets for w, t in corpus.contexts(s, kinds[s.kind])
                    if leaked(s, t, fn(t))}  # fmt: skip
    out["kinds_fully_caught"] = 1 - len(kinds_missed) / len({s.kind for s in secrets})
    return out


def labels(secrets: list[Any], kinds: Mapping[str, Any], sanitizer: Sanitizer) -> float:
    """Share of bare secrets whose placeholder names the expected kind (where one is known)."""
    checked = [s for s in secrets if kinds[s.kind].get("label")]
    good = sum(f"<{kinds[s.kind]['label']}" in sanitizer.text(s.text) for s in checked)
    return good / len(checked)


def kept(fn: TextFn, lines: list[str]) -> dict[str, float]:
    kept_words = total = unchanged = template = 0
    for line in lines:
        out = fn(line)
        remaining = Counter(out.split())
        for word in line.split():
            total += 1
            if remaining[word] > 0:
                kept_words += 1
                remaining[word] -= 1
        unchanged += out == line
        template += _pattern_of(out) == _pattern_of(line)
    n = len(lines)
    return {"tokens": kept_words / total, "lines": unchanged / n, "templates": template / n}


def rate(events: list[dict[str, Any]], fn: Callable[[dict[str, Any]], object]) -> float:
    start = time.perf_counter()
    for event in events:
        fn(event)
    return len(events) / (time.perf_counter() - start)


def speed(n: int) -> dict[str, dict[str, float]]:
    mixes = {
        "realistic": improve_bench.realistic(n),
        "unique_messages": improve_bench.unique_messages(n),
        "all_sensitive": improve_bench.all_sensitive(max(1, n // 10)),
    }
    makers: dict[str, Callable[[], Callable[[dict[str, Any]], object]]] = {
        "default-deny": lambda: Sanitizer().event,
        "v1": lambda: sanitizer_v1.Sanitizer().event,
        "copy": lambda: dict,
    }
    out: dict[str, dict[str, float]] = {}
    for mix, events in mixes.items():
        out[mix] = {name: rate(events, make()) for name, make in makers.items()}  # fresh memo
    sample = mixes["unique_messages"][: max(1, n // 100)]
    out["unique_messages"]["detect-secrets"] = rate(sample, DetectSecretsOnly().event)
    return out


# 4 KB (the input cap) of text built to make a regex or a loop work hard.
ADVERSARIAL = (
    "a." * 2048, "1." * 2048, "key." * 1024, "a.b@" * 1024, "::1 " * 1024, "a-" * 2048,
    "password=" * 455, '"' * 4096, "0" * 4096, "(1) " * 1024, "a [at] " * 585,
    "https://" * 512, "-----BEGIN " * 372, "x" * 4096, "a=" * 2048, "a:" * 2048,
    "ab=" * 1365, "x1=" * 1365, "<n>" * 1365, "password " * 455, "1 " * 2048,
    "a@" * 2048, "\u200b" * 4096,
)  # fmt: skip


def worst_case(fn: TextFn) -> tuple[float, str]:
    """The slowest adversarial input: milliseconds, and what it was."""
    worst, which = 0.0, ""
    for text in ADVERSARIAL:
        start = time.perf_counter()
        fn(text)
        took = time.perf_counter() - start
        if took > worst:
            worst, which = took, repr(text[:12]) + "…"
    return worst * 1000, which


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per speed mix")
    parser.add_argument("--out", type=Path, default=Path("bench/results/sanitizer.json"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, honestly
    kinds = corpus.load_kinds()
    secrets = corpus.load_corpus()
    harmless = corpus.load_harmless()
    new, old, ds = Sanitizer(), sanitizer_v1.Sanitizer(), DetectSecretsOnly()
    sample = secrets[::10]
    results: dict[str, Any] = {
        "machine": improve_bench.machine(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "corpus": {"secrets": len(secrets), "kinds": len(kinds), "harmless_lines": len(harmless)},
        "recall": {
            "default-deny": recall(new.text, secrets, kinds),
            "v1": recall(old.text, secrets, kinds),
            "detect-secrets (every 10th secret)": recall(ds.text, sample, kinds),
        },
        "labelled_correctly": labels(secrets, kinds, new),
        "kept": {
            "default-deny": kept(new.text, harmless),
            "v1": kept(old.text, harmless),
            "detect-secrets": kept(ds.text, harmless),
        },
        "events_per_s": speed(args.events),
        "worst_4kb": {
            "default-deny": worst_case(Sanitizer().text),
            "v1": worst_case(sanitizer_v1.Sanitizer().text),
        },
    }
    _print(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    ok = (
        results["recall"]["default-deny"]["all"] == 1.0
        and results["events_per_s"]["realistic"]["default-deny"] >= 50_000
    )
    return 0 if ok else 1


def _print(results: dict[str, Any]) -> None:
    def rows(title: str, table: Mapping[str, Mapping[str, float]], fmt: str) -> Iterable[str]:
        columns = sorted({c for row in table.values() for c in row}, key=str)
        width = {c: max(10, len(c) + 2) for c in columns}
        yield f"\n{title}\n{'':<36}" + "".join(f"{c:>{width[c]}}" for c in columns)
        for name, row in table.items():
            yield f"{name:<36}" + "".join(
                f"{format(row[c], fmt):>{width[c]}}" if c in row else " " * width[c]
                for c in columns
            )

    print(f"corpus: {results['corpus']}")
    print("\n".join(rows("recall (share of secrets gone)", results["recall"], ".4f")))
    print(f"placeholders naming the expected kind: {results['labelled_correctly']:.4f}")
    print("\n".join(rows("harmless text kept", results["kept"], ".4f")))
    print("\n".join(rows("events/s", results["events_per_s"], ",.0f")))
    for name, (ms, text) in results["worst_4kb"].items():
        print(f"worst adversarial 4 KB string, {name}: {ms:.1f} ms ({text})")
    print(f"machine: {results['machine']}, load average {results['load_average']}")


if __name__ == "__main__":
    sys.exit(main())
