"""Reflective prompt evolution in the style of GEPA: an LLM rewrites a prompt from the
examples it fails, and a Pareto front over the examples keeps every useful variant.

One iteration:
1. pick a parent from the **Pareto front**: the candidates that score best on at least
   one example (a candidate is picked in proportion to how many examples it leads on),
   so a prompt that is the only one to solve some example survives even when its mean
   is lower;
2. run the parent on a minibatch of the examples it may learn from and collect the
   ones it gets wrong, with the model's answers;
3. ask the LLM to **reflect**: here is the instruction, here is where it failed and what
   was expected; write a better instruction (between `<prompt>` and `</prompt>`);
4. score the child on the minibatch; only if it beats its parent there is it scored on
   the whole evaluation set and added to the pool.
The winner is the candidate with the best mean over the evaluation set. Every fourth
example (at least one) is **held out**: scored, never shown to the reflecting LLM, so a
rewrite that pastes the expected answers it was shown into the prompt gains nothing
there; the caller submits a winner only if it also does better on the held-out examples.
Every call goes through `Chat` (any OpenAI-compatible endpoint); the randomness comes
from one seed.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ouroboros.capabilities.llm.untrusted import FENCE_RULE, fence
from ouroboros.kernel.errors import UsageError

Chat = Callable[[Sequence[Mapping[str, Any]]], str]
METRICS = ("exact", "contains")
MAX_PROMPT = 20_000

# The instruction (a model's rewrite, after the first) and the answers are a model's text:
# fenced, so neither can pose as this request's own words.
REFLECT = """You improve the instruction (system prompt) given to an assistant.
{rule}

Current instruction:
{prompt}

On these inputs the assistant's answers were wrong:
{failures}

Write an improved instruction that would make the assistant answer these and similar
inputs correctly. Keep what works. Reply with the new instruction only, between <prompt>
and </prompt>."""


@dataclass(frozen=True)
class Example:
    input: str
    expected: str


def parse_evalset(items: Any) -> tuple[Example, ...]:
    """Examples from a parsed list of {"input": str, "expected": str} (the caller parses the
    file strictly, as one JSON list or as JSON lines)."""
    if not isinstance(items, list):
        raise UsageError('the evalset must be a JSON list of {"input", "expected"} objects')
    out = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("input"), str) or \
                not isinstance(item.get("expected"), str):
            raise UsageError(f'evalset example {n}: needs "input" and "expected" strings')
        out.append(Example(item["input"], item["expected"]))
    if not out:
        raise UsageError("the evalset is empty")
    if len(out) < 2:
        raise UsageError("the evalset needs two examples or more: every fourth (at least one) "
                         "is held out, never shown to the LLM, to check the winner on")
    return tuple(out)


def scrubbed(examples: Sequence[Example]) -> tuple[tuple[Example, ...], int]:
    """The examples with every credential the sanitizer's rules name replaced by its
    placeholder (as repository files are before a prompt): they go to the endpoint, and a
    rewrite may paste what it was shown into the prompt the ledger keeps for good."""
    from ouroboros.capabilities.improve.intake.secret_scrub import scrub_secrets

    out, hidden = [], 0
    for e in examples:
        (given, a), (expected, b) = scrub_secrets(e.input), scrub_secrets(e.expected)
        out.append(Example(given, expected))
        hidden += a + b
    return tuple(out), hidden


def held_out(n: int) -> tuple[int, ...]:
    """The indices never shown to the reflecting LLM: every fourth, else the last."""
    return tuple(range(3, n, 4)) or ((n - 1,) if n > 1 else ())


def _normal(text: str) -> str:
    return " ".join(text.split())  # whitespace-insensitive, case-sensitive


def grade(answer: str, expected: str, metric: str) -> float:
    if metric == "exact":
        return float(_normal(answer) == _normal(expected))
    return float(_normal(expected) in _normal(answer))


@dataclass
class Candidate:
    prompt: str
    scores: tuple[float, ...]  # one per example of the evaluation set
    parent: int | None = None

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    def mean_over(self, indices: Sequence[int]) -> float:
        return sum(self.scores[i] for i in indices) / len(indices) if indices else 0.0


@dataclass
class PromptResult:
    best: Candidate
    start: Candidate
    pool: list[Candidate]
    calls: int
    iterations: int
    log: list[str] = field(default_factory=list)


class PromptEvolver:
    def __init__(self, chat: Chat, examples: Sequence[Example], *, metric: str = "contains",
                 seed: int = 0, minibatch: int = 3) -> None:
        if metric not in METRICS:
            raise UsageError(f"unknown metric {metric!r}", f"use one of {', '.join(METRICS)}")
        self.chat, self.examples, self.metric = chat, tuple(examples), metric
        self.rng = random.Random(seed)
        self.held = held_out(len(self.examples))
        self.shown = [i for i in range(len(self.examples)) if i not in self.held] or \
            list(range(len(self.examples)))
        self.minibatch = max(1, min(minibatch, len(self.shown)))
        self.calls = 0

    def answer(self, prompt: str, example: Example) -> str:
        self.calls += 1
        return self.chat([{"role": "system", "content": prompt},
                          {"role": "user", "content": example.input}])

    def score(self, prompt: str, indices: Sequence[int]) -> tuple[tuple[float, ...], list[str]]:
        answers = [self.answer(prompt, self.examples[i]) for i in indices]
        return tuple(grade(a, self.examples[i].expected, self.metric)
                     for a, i in zip(answers, indices, strict=True)), answers

    def pareto_parent(self, pool: Sequence[Candidate]) -> int:
        """A candidate leading on some example, weighted by how many it leads on."""
        leads = [0] * len(pool)
        for e in range(len(self.examples)):
            top = max(c.scores[e] for c in pool)
            for i, c in enumerate(pool):
                if c.scores[e] == top:
                    leads[i] += 1
        return self.rng.choices(range(len(pool)), weights=[w + 1e-9 for w in leads])[0]

    def reflect(self, prompt: str, failures: Sequence[tuple[Example, str]]) -> str | None:
        shown = "\n".join(
            f"- input: {json.dumps(e.input)}\n  answer: {json.dumps(a[:500])}\n"
            f"  expected: {json.dumps(e.expected)}" for e, a in failures)
        self.calls += 1
        reply = self.chat([{"role": "user", "content": REFLECT.format(
            rule=FENCE_RULE, prompt=fence(prompt, "current instruction"),
            failures=fence(shown, "wrong answers"))}])
        match = re.search(r"<prompt>\s*(.*?)\s*</prompt>", reply, re.S)
        new = (match.group(1) if match else "").strip()
        return new if new and new != prompt and len(new) <= MAX_PROMPT else None

    def run(self, start: str, iterations: int) -> PromptResult:
        everything = range(len(self.examples))
        scores, _ = self.score(start, everything)
        pool = [Candidate(start, scores)]
        log: list[str] = []
        for n in range(1, iterations + 1):
            parent_index = self.pareto_parent(pool)
            parent = pool[parent_index]
            batch = self.rng.sample(self.shown, self.minibatch)  # never a held-out one
            batch_scores, answers = self.score(parent.prompt, batch)
            failures = [(self.examples[i], a) for i, a, s in
                        zip(batch, answers, batch_scores, strict=True) if s < 1.0]
            if not failures:
                log.append(f"iteration {n}: parent {parent_index} solved its minibatch")
                continue
            child = self.reflect(parent.prompt, failures)
            if child is None:
                log.append(f"iteration {n}: no usable rewrite")
                continue
            child_batch, _ = self.score(child, batch)
            if sum(child_batch) <= sum(batch_scores):
                log.append(f"iteration {n}: rewrite did not beat its parent on the minibatch")
                continue
            full, _ = self.score(child, everything)
            pool.append(Candidate(child, full, parent_index))
            log.append(f"iteration {n}: candidate {len(pool) - 1} from {parent_index}, "
                       f"mean {sum(full) / len(full):.3f}")
        best = max(pool, key=lambda c: (c.mean, -pool.index(c)))
        return PromptResult(best, pool[0], pool, self.calls, iterations, log)
