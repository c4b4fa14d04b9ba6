# mypy: ignore-errors
# ruff: noqa
# Guest program: runs inside the WASM sandbox, not in the host.
import json
import sys


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def parse(path):
    if not path.startswith("$"):
        fail("path must start with $")
    steps = []
    i = 1
    while i < len(path):
        c = path[i]
        if c == ".":
            j = i + 1
            while j < len(path) and path[j] not in ".[":
                j += 1
            name = path[i + 1:j]
            if not name:
                fail("empty name in path at " + str(i))
            steps.append(("*",) if name == "*" else ("key", name))
            i = j
        elif c == "[":
            j = path.find("]", i)
            if j < 0:
                fail("unclosed [ in path")
            inner = path[i + 1:j].strip()
            if inner == "*":
                steps.append(("*",))
            elif inner[:1] in ("'", '"'):
                steps.append(("key", inner[1:-1]))
            else:
                try:
                    steps.append(("index", int(inner)))
                except ValueError:
                    fail("bad index [" + inner + "]")
            i = j + 1
        else:
            fail("unexpected " + repr(c) + " in path")
    return steps


def walk(nodes, step):
    out = []
    for node in nodes:
        if step[0] == "*":
            if isinstance(node, dict):
                out.extend(node.values())
            elif isinstance(node, list):
                out.extend(node)
        elif step[0] == "key":
            if isinstance(node, dict) and step[1] in node:
                out.append(node[step[1]])
        elif isinstance(node, list) and -len(node) <= step[1] < len(node):
            out.append(node[step[1]])
    return out


request = json.loads(sys.stdin.read())
if not isinstance(request, dict) or "data" not in request or not isinstance(request.get("path"), str):
    fail("input must be {\"data\": JSON, \"path\": \"$...\"}")
nodes = [request["data"]]
for step in parse(request["path"]):
    nodes = walk(nodes, step)
print(json.dumps(nodes))
