"""Independent evidence benchmark: how many wrong LLM-made tools end up served, and right ones.

Thirty small tool requests (numbers, lists, strings) go through `ToolAuthor.create` against a
scripted model. On a third of them the code-writing model is wrong in a way its own tests do
not catch: it writes a plausible misconception (``x[-1]`` for the maximum, ``len(s.split(' '))``
for a word count...) and computes its cases with that same misconception, so they pass. The
test-writing call is a separate conversation of the same scripted model; it is wrong a third
of the time too:

- ``independent``: its slip is its own (one expected value off), unrelated to the code's;
- ``random_inputs``: as ``independent``, but the test writer picks random inputs only, no
  edge cases (a careless test writer: a misconception its inputs never reach goes unseen);
- ``correlated``: on the tasks where the code is wrong it shares the code's misconception
  (the worst case for independent tests: the same wrong idea twice).

Half the tasks carry two examples in the request (``{"x": 3} -> 6``), as a user would write.
The baseline is the old behaviour: the author's own cases only, everything served.

    python bench/llm_evidence.py [--seeds N] [--out FILE]

Which third is wrong, which test-writer answers slip and which tasks carry examples are drawn
from the seed; the default runs seeds 1 to 5 (150 requests per configuration).

Every tool really runs (MicroPython in the WASM sandbox); the model is a scripted provider in
this process (the HTTP client is exercised by tests/llm, not timed here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.capabilities.llm import ChatReply, Usage
from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.authoring import AuthoringFailed, ToolAuthor
from ouroboros.capabilities.skills.evidence import SkillPolicy, is_served
from ouroboros.capabilities.skills.runtimes import Runtimes

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Task:
    name: str
    what: str
    kind: str  # int | list | str | small | float
    out: str  # JSON Schema type of the output
    right: str  # Python expression of x, run in MicroPython as the tool
    wrong: str  # the plausible misconception


def _fact(n: int) -> int:
    r = 1
    for i in range(2, n + 1):
        r *= i
    return r


TASKS: tuple[Task, ...] = (
    Task("double", "Double an integer x.", "int", "integer", "x * 2", "x + 2"),
    Task("square", "Square an integer x.", "int", "integer", "x * x", "x * 2"),
    Task("cube", "Cube an integer x.", "int", "integer", "x ** 3", "x * 3"),
    Task("absolute", "The absolute value of an integer x.", "int", "integer",
         "abs(x)", "x if x > 0 else 0"),
    Task("is_even", "Whether an integer x is even.", "int", "boolean", "x % 2 == 0",
         "x % 2 == 1"),
    Task("clamp", "Clamp an integer x to the range 0..100.", "int", "integer",
         "max(0, min(100, x))", "min(100, x)"),
    Task("digit_sum", "The sum of the decimal digits of an integer x (sign ignored).", "int",
         "integer", "sum(int(c) for c in str(abs(x)))", "sum(int(c) for c in str(abs(x))[1:])"),
    Task("to_percent", "A fraction x as a percentage.", "float", "number", "x * 100", "x * 10"),
    Task("c_to_f", "Celsius x to Fahrenheit.", "float", "number", "x * 9 / 5 + 32",
         "x * 5 / 9 + 32"),
    Task("km_to_m", "Kilometres x to metres.", "float", "number", "x * 1000", "x * 100"),
    Task("factorial", "The factorial of a small integer x >= 0.", "small", "integer",
         "fact(x)", "fact(x - 1) if x > 1 else 1"),
    Task("triangle", "The x-th triangular number (1 + 2 + ... + x) for x >= 0.", "small",
         "integer", "x * (x + 1) // 2", "x * (x - 1) // 2"),
    Task("sum_list", "The sum of a list of integers x.", "list", "integer", "sum(x)",
         "sum(x[1:])"),
    Task("max_list", "The largest integer in a non-empty list x.", "list", "integer",
         "max(x)", "x[-1]"),
    Task("min_list", "The smallest integer in a non-empty list x.", "list", "integer",
         "min(x)", "x[0]"),
    Task("list_len", "The number of items in a list x.", "list", "integer", "len(x)",
         "len(x) - 1"),
    Task("reverse_list", "A list x in reverse order.", "list", "array", "x[::-1]",
         "x[:-1][::-1] + x[-1:]"),
    Task("sort_list", "A list of integers x sorted ascending.", "list", "array", "sorted(x)",
         "sorted(x, reverse=True)"),
    Task("unique_count", "How many distinct integers a list x holds.", "list", "integer",
         "len(set(x))", "len(x)"),
    Task("count_zeros", "How many zeros a list x holds.", "list", "integer", "x.count(0)",
         "x.count(1)"),
    Task("mean_floor", "The mean of a non-empty list x, rounded down.", "list", "integer",
         "sum(x) // len(x)", "sum(x) // (len(x) + 1)"),
    Task("string_len", "The number of characters in a string x.", "str", "integer", "len(x)",
         "len(x.strip())"),
    Task("upper", "A string x in upper case.", "str", "string", "x.upper()", "x.lower()"),
    # (MicroPython slices strings with step 1 only: reversed() instead of x[::-1])
    Task("reverse_string", "A string x reversed.", "str", "string", "''.join(reversed(x))",
         "''.join(reversed(x[:-1])) + x[-1:]"),
    Task("count_vowels", "How many vowels (a, e, i, o, u, either case) a string x holds.",
         "str", "integer", "sum(1 for c in x.lower() if c in 'aeiou')",
         "sum(1 for c in x if c in 'aeiou')"),
    Task("word_count", "How many words (runs of non-space) a string x holds.", "str",
         "integer", "len(x.split())", "len(x.split(' '))"),
    Task("first_word", "The first word of a string x, or '' when it has none.", "str",
         "string", "(x.split() or [''])[0]", "x.split(' ')[0]"),
    Task("is_palindrome", "Whether a string x reads the same backwards.", "str", "boolean",
         "x == ''.join(reversed(x))", "x[:1] == x[-1:]"),
    Task("capitalise", "A string x with its first character upper-cased.", "str", "string",
         "x[:1].upper() + x[1:]", "x.upper()"),
    Task("strip_spaces", "A string x without leading or trailing spaces.", "str", "string",
         "x.strip()", "x.lstrip()"),
)

#: The inputs a careful test writer picks for each task: its edge cases.
EDGES: dict[str, list[Any]] = {
    "double": [0, -3], "square": [3, -4], "cube": [2, -2], "absolute": [-7, 0],
    "is_even": [3, -2], "clamp": [-5, 150], "digit_sum": [907, -45], "to_percent": [3, -1],
    "c_to_f": [100, -40], "km_to_m": [3, 0], "factorial": [0, 5], "triangle": [1, 4],
    "sum_list": [[5], [1, 2, 3]], "max_list": [[9, 1, 3], [-2, -5]], "min_list": [[4, 1, 7], [3]],
    "list_len": [[7], [1, 2, 3]], "reverse_list": [[1, 2, 3], [4]],
    "sort_list": [[3, 1, 2], [5, 5, 1]], "unique_count": [[1, 1, 2], [3]],
    "count_zeros": [[0, 1, 0], [2]], "mean_floor": [[1, 2], [7]], "string_len": [" a ", ""],
    "upper": ["Mixed", "a b"], "reverse_string": ["abc", "x"], "count_vowels": ["AEIOU", "sky"],
    "word_count": ["a  b", " x"], "first_word": [" lead", "two words"],
    "is_palindrome": ["abca", "noon"], "capitalise": ["hello world", "a"],
    "strip_spaces": [" pad ", "x"],
}

IN_TYPES = {"int": {"type": "integer", "minimum": -500, "maximum": 500},
            "small": {"type": "integer", "minimum": 0, "maximum": 12},
            "float": {"type": "integer", "minimum": -50, "maximum": 50},
            "list": {"type": "array", "items": {"type": "integer", "minimum": -9, "maximum": 9},
                     "minItems": 1, "maxItems": 6},
            "str": {"type": "string", "maxLength": 12}}
STRINGS = ("hello world", "  two  spaces ", "Abba", "racecar", "Quiet", "x", "AEIOU aeiou",
           "no", "level up", " lead", "trail ", "a  b   c", "", "Mixed Case", "noon",
           "tab\tbed", "Zebra", "end.", "Two Words", "aaa", "b")


def inputs(task: Task, rng: random.Random, n: int) -> list[Any]:
    """n inputs of the task's kind (distinct where the kind has that many)."""
    out: list[Any] = []
    for _ in range(50 * n):
        if len(out) >= n:
            break
        if task.kind == "int":
            x: Any = rng.randint(-500, 500)
        elif task.kind == "small":
            x = rng.randint(0, 12)
        elif task.kind == "float":
            x = rng.randint(-50, 50)
        elif task.kind == "list":
            x = [rng.randint(-9, 9) for _ in range(rng.randint(1, 6))]
        else:
            x = rng.choice(STRINGS)
        if x not in out or len(out) >= 12:
            out.append(x)
    return out


def evaluate(expr: str, x: Any) -> Any:
    return eval(expr, {"fact": _fact}, {"x": x})  # our own catalogue's expressions only


def source(expr: str) -> str:
    return ("import json, sys\n"
            "def fact(n):\n    r = 1\n    for i in range(2, n + 1):\n        r *= i\n"
            "    return r\n"
            "d = json.load(sys.stdin)\n"
            "if not isinstance(d, dict) or 'x' not in d:\n"
            "    sys.stderr.write('input must be an object with x')\n    sys.exit(1)\n"
            "x = d['x']\n"
            f"print(json.dumps({expr}))")


def slip(value: Any) -> Any:
    """One expected value off: what a careless test writer gets wrong on its own."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "!"
    return [*value, 0]


@dataclass(frozen=True)
class Plan:
    code_wrong: bool
    writer: str  # none | right | slip | shared
    examples: bool
    edges: bool = True  # the test writer tests the task's edge cases


class ScriptedModel:
    """The model: code writer and test writer, by the request's system prompt."""

    model = "scripted-bench"

    def __init__(self, plans: Mapping[str, Plan], seed: int) -> None:
        self.plans, self.seed = plans, seed
        self.calls = 0

    def chat(self, messages: Sequence[Mapping[str, Any]], tools: Any = None, *,
             deadline: float | None = None) -> ChatReply:
        self.calls += 1
        user = str(messages[-1]["content"]) if messages[-1]["role"] == "user" else ""
        first_user = next(str(m["content"]) for m in messages if m["role"] == "user")
        name = re.search(r"Tool name: (\w+)", first_user)
        assert name is not None, first_user[:200]
        task = next(t for t in TASKS if t.name == name.group(1))
        plan = self.plans[task.name]
        rng = random.Random(f"{self.seed}:{task.name}")
        if str(messages[0]["content"]).startswith("You write test cases"):
            text = self._writer(task, plan, rng)
        else:
            text = self._code(task, plan, rng, repair="rejected" in user)
        return ChatReply(text, [], "stop", Usage(len(first_user) // 4, len(text) // 4))

    def _writer(self, task: Task, plan: Plan, rng: random.Random) -> str:
        xs = inputs(task, random.Random(f"w{self.seed}:{task.name}"), 12)[6:11]
        if plan.edges:  # two of its five inputs are the task's edge cases
            xs = [*EDGES[task.name], *[x for x in xs if x not in EDGES[task.name]][:3]]
        expr = task.wrong if plan.writer == "shared" else task.right
        cases = [{"input": {"x": x}, "expected": evaluate(expr, x)} for x in xs]
        if plan.writer == "slip":
            i = rng.randrange(len(cases))
            cases[i]["expected"] = slip(cases[i]["expected"])
        cases.append({"input": {"y": 1}, "error": "input must be an object with x"})
        return json.dumps({"input_schema": {"type": "object", "properties": {
            "x": IN_TYPES[task.kind]}, "required": ["x"]},
            "output_schema": {"type": task.out}, "cases": cases})

    def _code(self, task: Task, plan: Plan, rng: random.Random, repair: bool) -> str:
        expr = task.wrong if plan.code_wrong else task.right
        xs = inputs(task, random.Random(f"a{self.seed}:{task.name}"), 4)
        cases = [{"input": {"x": x}, "expected": evaluate(expr, x)} for x in xs]
        meta = {"name": task.name, "description": task.what, "language": "python",
                "runtime": "micropython"}
        return (f"```json meta.json\n{json.dumps(meta)}\n```\n```python src/main.py\n"
                f"{source(expr)}\n```\n```json tests/cases.json\n{json.dumps(cases)}\n```\n")


def request_text(task: Task, with_examples: bool, seed: int) -> str:
    text = f"{task.what} Input: {{\"x\": ...}}; output: a JSON {task.out}."
    if with_examples:
        xs = inputs(task, random.Random(f"e{seed}:{task.name}"), 16)[12:14]
        shown = ", ".join(f'{json.dumps({"x": x})} -> {json.dumps(evaluate(task.right, x))}'
                          for x in xs)
        text += f" Examples: {shown}."
    return text


def plans(mode: str, seed: int) -> dict[str, Plan]:
    rng = random.Random(seed)
    names = [t.name for t in TASKS]
    wrong = set(rng.sample(names, len(names) // 3))
    slips = set(rng.sample(names, len(names) // 3))
    out = {}
    for i, name in enumerate(names):
        if mode == "baseline":
            writer = "none"
        elif mode == "correlated":
            writer = "shared" if name in wrong else ("slip" if name in slips else "right")
        else:
            writer = "slip" if name in slips else "right"
        out[name] = Plan(name in wrong, writer, examples=mode != "baseline" and i % 2 == 0,
                         edges=mode != "random_inputs")
    return out


def run(mode: str, seed: int = 7, runtimes: Runtimes | None = None,
        tasks: Sequence[Task] = TASKS) -> dict[str, Any]:
    """One configuration over the tasks; counts of wrong / right tools served."""
    layout = plans(mode, seed)
    model = ScriptedModel(layout, seed)
    policy = SkillPolicy(unproven="serve" if mode == "baseline" else "hide")
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = SkillStore(Path(tmp), runtimes=runtimes or Runtimes(), policy=policy)
        author = ToolAuthor(store, model, max_repairs=1, test_writer=mode != "baseline")
        for task in tasks:
            plan = layout[task.name]
            try:
                done = author.create(request_text(task, plan.examples, seed), name=task.name)
                served, evidence = is_served(done.version.meta, policy), done.evidence
            except AuthoringFailed as e:
                served, evidence = False, {"rejected": e.reason}
            rows.append({"task": task.name, "code_wrong": plan.code_wrong,
                         "writer": plan.writer, "examples": plan.examples, "served": served,
                         "evidence": evidence})
    wrong = [r for r in rows if r["code_wrong"]]
    right = [r for r in rows if not r["code_wrong"]]
    return {
        "mode": mode, "seed": seed, "tasks": len(rows), "model_calls": model.calls,
        "wrong": len(wrong), "wrong_served": sum(r["served"] for r in wrong),
        "right": len(right), "right_served": sum(r["served"] for r in right),
        "seconds": round(time.perf_counter() - start, 2), "rows": rows,
    }


MODES = ("baseline", "independent", "random_inputs", "correlated")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5, help="runs of the 30 requests, seeds 1..N")
    ap.add_argument("--out", default="bench/results/llm_evidence.json")
    args = ap.parse_args()
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "load": os.getloadavg(), "seeds": args.seeds}
    print(f"# independent evidence benchmark  {meta['date']}  load {meta['load'][0]:.1f}")
    runtimes = Runtimes()
    results = [run(mode, seed, runtimes) for seed in range(1, args.seeds + 1) for mode in MODES]
    print(f"{'mode':12} {'seed':>4} {'wrong served':>14} {'right served':>14} {'calls':>6} "
          f"{'s':>6}")
    for r in results:
        print(f"{r['mode']:12} {r['seed']:>4} {r['wrong_served']:>6}/{r['wrong']:<7} "
              f"{r['right_served']:>6}/{r['right']:<7} {r['model_calls']:>6} {r['seconds']:>6}")
    totals = {}
    for mode in MODES:
        mine = [r for r in results if r["mode"] == mode]
        totals[mode] = {k: sum(r[k] for r in mine) for k in ("tasks", "wrong", "wrong_served",
                                                            "right", "right_served")}
        t = totals[mode]
        print(f"{mode:12} {'all':>4} {t['wrong_served']:>6}/{t['wrong']:<7} "
              f"{t['right_served']:>6}/{t['right']:<7}  wrong served "
              f"{t['wrong_served'] / t['wrong']:.0%}, right served "
              f"{t['right_served'] / t['right']:.0%}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "totals": totals,
                                          "results": results}, indent=2))


if __name__ == "__main__":
    main()
