"""The placeholders the sanitizer writes, and how analysis reads them.

A replaced value becomes ``<label>``: ``<secret:LABEL>`` for credentials (LABEL is the
format, ``github-pat``, or the name it was assigned to, ``password``), and ``<email>``,
``<phone>``, ``<card>``, ``<ssn>``, ``<ip>``/``<ip:private>``/``<ip:loopback>``,
``<path>``, ``<hex>``, ``<uuid>``, ``<token>``, ``<n>``, ``<time>``, ``<pem>``, ``<mac>``.
Only these exact strings are kept when text is sanitized again; anything else between
``<`` and ``>`` is read as ordinary text (a forged ``<secret:hunter2>`` protects nothing).
"""

from __future__ import annotations

import re

from ouroboros.capabilities.improve.intake import secret_rules as rules

GENERIC_LABELS = frozenset({"n", "time", "ip", "ip:private", "ip:loopback", "email", "phone",
                            "card", "ssn", "path", "uuid", "hex", "token", "secret", "pem",
                            "mac"})  # fmt: skip
_SECRET_LABELS = (
    set(rules.RULE_LABELS)
    | set(rules.DETECT_SECRETS_LABELS.values())
    | set(rules.KEY_COMPONENTS.values())
    | {"aws-secret-access-key", "azure-storage-account-key", "url-credentials", "basic-auth",
       "bearer-token", "high-entropy", "private-key"}
)  # fmt: skip
#: The shape of every placeholder (known or forged): one pattern for the scanner's token,
#: the echo pass's skipping and the sanitizer's check of what a clean text holds.
PLACEHOLDER = r"<[a-z]{1,12}(?::[a-z0-9\-]{1,60})?>"
PLACEHOLDER_RE = re.compile(PLACEHOLDER)
KNOWN_PLACEHOLDERS = frozenset(
    {f"<{label}>" for label in GENERIC_LABELS} | {f"<secret:{s}>" for s in _SECRET_LABELS}
)


_TYPED = re.compile(r"<(secret|ip)(?::[a-z0-9\-]{1,60})?>|<(?:hex|uuid|token)>|<time>")


def fold_placeholders(text: str) -> str:
    """Placeholders reduced to their family, so one error template groups whatever it held:
    ``<secret:github-pat>`` and ``<secret:password>`` are ``<secret>``, ``<ip:private>`` is
    ``<ip>``, ``<hex>``/``<uuid>``/``<token>`` are ``<id>``, ``<time>`` is ``<n>``."""
    if "<" not in text:
        return text
    return _TYPED.sub(_family_of_placeholder, text)


def _family_of_placeholder(match: re.Match[str]) -> str:
    if match.group(1):
        return f"<{match.group(1)}>"
    return "<n>" if match.group() == "<time>" else "<id>"


def family(label: str) -> str | None:
    """The redaction counter a placeholder label adds to (numbers and times are not counted)."""
    if label in ("n", "time"):
        return None
    if label.startswith("ip"):
        return "ip"
    if label in ("email", "path", "phone", "card", "ssn", "url", "mac"):
        return label
    return "secret"
