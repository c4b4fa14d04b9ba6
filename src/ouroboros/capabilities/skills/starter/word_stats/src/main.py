# mypy: ignore-errors
# ruff: noqa
# Guest program: runs inside the WASM sandbox, not in the host.
import json
import sys


def words_of(text):
    words, cur = [], []
    for ch in text.lower():
        if ch.isalpha() or ch.isdigit() or ch == "'":
            cur.append(ch)
        elif cur:
            words.append("".join(cur).strip("'"))
            cur = []
    if cur:
        words.append("".join(cur).strip("'"))
    return [w for w in words if w]


request = json.loads(sys.stdin.read())
if isinstance(request, str):
    request = {"text": request}
if not isinstance(request, dict) or not isinstance(request.get("text"), str):
    sys.stderr.write("input must be a string or {\"text\": string}\n")
    sys.exit(1)
text = request["text"]
top_n = request.get("top", 3)
words = words_of(text)
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
sentences = sum(1 for ch in text if ch in ".!?")
avg = round(sum(len(w) for w in words) / len(words), 2) if words else 0
print(json.dumps({
    "words": len(words),
    "unique": len(counts),
    "chars": len(text),
    "sentences": sentences,
    "avg_word_length": avg,
    "top": [[w, c] for w, c in ranked],
}))
