"""Secrets out of text that must otherwise stay as it is (repository files for a prompt).

The telemetry sanitizer is default-deny: it replaces every number, path and generated-
looking token, which is right for error messages and wrong for a file a model must
write a diff against (the diff's context lines have to match the file). This keeps the
text byte for byte but for what the sanitizer's own rules (`.secret_rules`) name as a
secret, each replaced by the placeholder the sanitizer would use:

- a token in a known issuer's format (``ghp_…``, ``AKIA…``, ``sk-ant-…``, PEM private
  keys), also when hex- or base64-encoded;
- the value after a secret's name (``password: hunter2``, ``"api_key" = "…"``,
  ``DB_PASS=…``), unless it is a placeholder or a state (``${TOKEN}``, ``none``);
- the password in a URL (``https://user:pass@host``).

Text is folded first only for *finding* (zero-width characters, full-width letters);
what is replaced is the original span, so nothing else changes.
"""

from __future__ import annotations

import re

from ouroboros.capabilities.improve.intake.secret_rules import (
    BENIGN_VALUES,
    TEMPLATE_REFERENCE,
    decoded_label,
    first_rule_match,
    key_label,
)

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
                  r"(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL)
#: ``key <sep> value``: the key a word (maybe quoted), the separator ``:`` or ``=``.
_ASSIGN = re.compile(r"""(?P<key>[A-Za-z_$@][A-Za-z0-9_.\-]{0,80})["']?[ \t]*(?::|=|:=)[ \t]*"""
                     r"""(?P<q>["']?)(?P<value>[^\s"'`,;#]{3,4096})""")
_URL_PASSWORD = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]{0,20}://[^/\s:@]{1,256}:)"
                           r"(?P<pw>[^/\s@]{1,256})(?=@)")
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~]{12,4096}")
#: Values that are code, not literals: calls, indexing, attribute paths (``self.token``).
_CODE_VALUE = re.compile(r"[^()\[\]{}<>]*[()\[\]{}<>].*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_INVISIBLE = re.compile(r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def scrub_secrets(text: str) -> tuple[str, int]:
    """``text`` with every secret the rules name replaced; and how many were."""
    count = 0

    def sub(pattern: re.Pattern[str], repl: object, s: str) -> str:
        nonlocal count
        out, n = pattern.subn(repl, s)  # type: ignore[call-overload]
        count += n
        return str(out)

    # Zero-width characters split a token so no rule sees it; drop them (they are never
    # content a file needs, and the fence makes the text data anyway).
    text = _INVISIBLE.sub("", text)
    text = sub(_PEM, "<secret:private-key>", text)
    text = sub(_URL_PASSWORD, lambda m: f"{m.group('pre')}<secret:password>", text)

    def assignment(m: re.Match[str]) -> str:
        nonlocal count
        label = key_label(m.group("key"))
        value = m.group("value")
        if (label is None or value.lower().rstrip(".") in BENIGN_VALUES
                or TEMPLATE_REFERENCE.fullmatch(value) or _CODE_VALUE.fullmatch(value)):
            return m.group(0)
        count += 1
        return m.group(0)[: m.start("value") - m.start(0)] + f"<secret:{label}>"

    text = _ASSIGN.sub(assignment, text)

    def token(m: re.Match[str]) -> str:
        nonlocal count
        word = m.group(0)
        found = first_rule_match(word)
        if found is not None:
            label, start, end = found
            count += 1
            return word[:start] + f"<secret:{label}>" + token_rest(word[end:])
        hidden = decoded_label(word.rstrip(".")) if len(word) >= 16 else None
        if hidden is not None and hidden != "basic-auth":
            count += 1
            return f"<secret:{hidden}>"
        return word

    def token_rest(rest: str) -> str:
        return _TOKEN.sub(token, rest) if rest else rest

    return _TOKEN.sub(token, text), count
