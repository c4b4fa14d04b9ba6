"""The sanitizer as it was before default-deny (commit ebe8690), kept as the benchmark baseline.

``bench/sanitizer.py`` measures it side by side with the current one in the same run:
its recall on the labelled secrets corpus, the share of harmless text it keeps, and
its events/s. Not used by the product. Its token rules (``secret_rules.py`` then) are
inlined below.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ouroboros.capabilities.improve.intake.events import MAX_MESSAGE, cut_text

_END = r"(?![A-Za-z0-9_\-])"

TOKEN_RULES: tuple[tuple[str, str], ...] = (
    (
        "aws_access_key_id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
    ),
    ("gcp_api_key", r"\bAIza[0-9A-Za-z_\-]{35}" + _END),
    ("gcp_oauth_client_secret", r"\bGOCSPX-[A-Za-z0-9_\-]{28}" + _END),
    ("gcp_oauth_access_token", r"\bya29\.[0-9A-Za-z_\-]{20,}" + _END),
    (
        "azure_client_secret",
        r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~\-])",
    ),
    ("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"),
    ("github_fine_grained_pat", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    (
        "gitlab_token",
        r"\bgl(?:pat|dt|rt|ptt|cbt|imt|oas|agent|soat|ffct|ft)-[A-Za-z0-9_\-]{20,}" + _END,
    ),
    ("gitlab_runner_registration", r"\bGR1348941[A-Za-z0-9_\-]{20,50}" + _END),
    ("anthropic_api_key", r"\bsk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{32,}" + _END),
    ("openai_api_key", r"\bsk-(?:proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_\-]{20,}" + _END),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("groq_api_key", r"\bgsk_[A-Za-z0-9]{40,}\b"),
    ("replicate_api_token", r"\br8_[A-Za-z0-9]{30,}\b"),
    ("xai_api_key", r"\bxai-[A-Za-z0-9]{40,}\b"),
    ("perplexity_api_key", r"\bpplx-[A-Za-z0-9]{40,}\b"),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}" + _END),
    ("slack_app_token", r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]+\b"),
    (
        "discord_bot_token",
        r"\b[MNO][A-Za-z\d_\-]{23,27}\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27,40}" + _END,
    ),
    ("telegram_bot_token", r"\b\d{8,10}:[A-Za-z0-9_\-]{35}" + _END),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    ("stripe_webhook_secret", r"\bwhsec_[A-Za-z0-9]{24,}\b"),
    ("twilio_api_key", r"\bSK[0-9a-fA-F]{32}\b"),
    ("sendgrid_api_key", r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}" + _END),
    ("mailgun_api_key", r"\bkey-[0-9a-zA-Z]{32}\b"),
    ("mailchimp_api_key", r"\b[0-9a-f]{32}-us\d{1,2}\b"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}" + _END),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    ("square_token", r"\bsq0(?:atp|csp)-[0-9A-Za-z_\-]{22,43}" + _END),
    ("atlassian_api_token", r"\bATATT3[A-Za-z0-9_\-=]{50,}"),
    ("linear_api_key", r"\blin_api_[A-Za-z0-9]{40}\b"),
    ("notion_token", r"\b(?:ntn_|secret_)[A-Za-z0-9]{40,}\b"),
    ("vault_token", r"\bhv[sbr]\.[A-Za-z0-9_\-]{24,}" + _END),
    ("databricks_token", r"\bdapi[a-f0-9]{32}(?:-\d)?\b"),
    ("age_secret_key", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
)

#: Names that make the value after ``=`` or ``:`` a secret (matched case-insensitively).
KEYWORDS = (
    r"(?i:secret|token|passw(?:or)?d|passphrase|pwd|api[_\-]?key|access[_\-]?key"
    r"|account[_\-]?key|private[_\-]?key|signing[_\-]?key|auth(?:orization)?|credentials?"
    r"|\bsig|\bkey)"
)

REDACTED = "[REDACTED_KEY]"
EXTERNAL_IP = "[EXTERNAL_IP]"
PATH = "[PATH]"
EMAIL = "[EMAIL]"
_PLACEHOLDERS = (REDACTED, EXTERNAL_IP, PATH, EMAIL)

DEFAULT_PATH_PREFIXES = (
    "/opt/ouro/",
    "/opt/jarvis/",
    "/usr/lib/python3",
    "/usr/local/lib/python3",
    "/etc/ouro/",
)
DEFAULT_URL_PREFIXES: tuple[str, ...] = ()

#: Event fields never rewritten: validated enums, numbers and hex ids.
_STRUCTURAL = frozenset(
    {
        "timestamp",
        "event_type",
        "success",
        "latency_ms",
        "retry_count",
        "rating",
        "severity",
        "trace_id",
        "span_id",
    }
)

_RUN = re.compile(r"[A-Za-z0-9_\-+/=.~]{16,}")
_GATE_WORDS = ("key", "token", "secret", "passw", "pwd", "passphrase", "auth", "bearer", "cred", "sig",
               "begin", "akc")  # fmt: skip
_DIGIT_DOT = re.compile(r"\d\.\d")
_COLONS = re.compile(r"[0-9a-fA-F]:[0-9a-fA-F]*:|::")


def gate(text: str) -> bool:
    """Could ``text`` hold anything sensitive? Cheap and sound (tested): False means no rule applies.

    Plain substring tests and three tiny regexes beat one combined case-insensitive
    alternation by an order of magnitude; this runs on every string of every event.
    """
    if "/" in text or "\\" in text or "@" in text or _RUN.search(text):
        return True
    lowered = text.lower()
    if any(word in lowered for word in _GATE_WORDS):
        return True
    if "." in text and _DIGIT_DOT.search(text):
        return True
    return ":" in text and _COLONS.search(text) is not None


_SECRETISH = re.compile(
    r"[A-Za-z0-9_\-+/=.]{16,}|" + KEYWORDS + r"|BEGIN|AKC[a-zA-Z0-9]{10}", re.IGNORECASE
)

_TOKEN_ALTERNATION = "|".join(f"(?:{pattern})" for _, pattern in TOKEN_RULES)

_MAIN = re.compile(
    r"(?P<pk>-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z))"
    r"|(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s\"'<>\\`]+)"
    r"|(?P<kv>(?<![A-Za-z0-9])[\w.\-]{0,48}?"
    + KEYWORDS
    + r"[\w.\-]{0,48}[\"']?\s{0,8}(?:=>|:=|=|:)\s{0,8}"
    r"(?:\"[^\"]*\"|'[^']*'|(?:(?i:bearer|basic|token)\s+)?[^\s\"',;&)]+))"
    r"|(?P<bearer>\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,})"
    r"|(?P<token>" + _TOKEN_ALTERNATION + r")"
    r"|(?P<email>\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b)"
    r"|(?P<ipv4>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w]|\.\d))"
    r"|(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?:%[\w.]+)?(?![\w:]))"
    r"|(?P<path>(?<![\w.:/~\\])(?:~|\.{1,2})?/[\w.@+\-]+(?:/[\w.@+\-]*)*"
    r"|\b[A-Za-z]:\\(?:[^\\\s\"'<>|:*?]+\\)*[^\\\s\"'<>|:*?]*)"
    r"|(?P<opaque>(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}(?![A-Za-z0-9+/_\-]))"
)
_KV_SPLIT = re.compile(r"^(.*?(?:=>|:=|=|:)\s*)([\"']?)(.*?)([\"']?)$", re.DOTALL)
_TRAILING = ".,;:!?)]}'\""


_BENIGN = frozenset({"none", "null", "true", "false", "redacted", "***", "<redacted>", ""})


_STRONG_KEY = re.compile(r"passw|pwd|passphrase|secret", re.IGNORECASE)


def _looks_secret(value: str, key: str) -> bool:
    """A keyword's value is redacted unless it is plainly a word ("token: expired").

    A password that is one short dictionary word survives this rule; detect-secrets'
    keyword plugin still catches it when quoted.
    """
    if value.lower() in _BENIGN or value.startswith("["):
        return False
    if _STRONG_KEY.search(key):
        return True
    return not (value.isalpha() and len(value) <= 12)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _is_opaque_secret(token: str) -> bool:
    """Unknown-format keys: long, mixed-case alphanumeric, high entropy.

    Hex digests, UUIDs and lowercase identifiers are not mixed-case, so they survive.
    """
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    has_digit = any(c.isdigit() for c in token)
    return has_upper and has_lower and has_digit and _entropy(token) >= 4.0


@dataclass(frozen=True)
class SanitizerPolicy:
    """What may survive: allow-listed path prefixes and URL prefixes (host + path)."""

    path_prefixes: tuple[str, ...] = DEFAULT_PATH_PREFIXES
    url_prefixes: tuple[str, ...] = DEFAULT_URL_PREFIXES
    session_salt: str = "ouro-telemetry"
    use_detect_secrets: bool = True


@dataclass
class Redactions:
    """How many things of each kind the sanitizer removed (reported by ``ingest``)."""

    counts: Counter[str] = field(default_factory=Counter)


def generalise_ip(text: str) -> str:
    """Private, loopback and link-local addresses keep their network; others go.

    IPv4 keeps the first two octets (``10.0.x.x``), IPv6 the first two groups.
    """
    candidate = text.strip("[]").split("%", 1)[0]  # an IPv6 zone ("%eth0") goes too
    octets = candidate.split(".")
    if len(octets) == 4 and all(o.isdigit() and len(o) <= 3 for o in octets):
        candidate = ".".join(str(int(o)) for o in octets)  # "010.001.002.003": still an address
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_global or not (
        address.is_private or address.is_loopback or address.is_link_local
    ):
        return EXTERNAL_IP
    if isinstance(address, ipaddress.IPv4Address):
        first, second = str(address).split(".")[:2]
        return f"{first}.{second}.x.x"
    groups = address.exploded.split(":")
    return ":".join([groups[0].lstrip("0") or "0", groups[1].lstrip("0") or "0", *("x" * 6)])


class Sanitizer:
    """Rewrites text and events so they can be stored; see the module docstring."""

    def __init__(self, policy: SanitizerPolicy | None = None) -> None:
        self.policy = policy or SanitizerPolicy()
        self._plugins = _detect_secrets_plugins() if self.policy.use_detect_secrets else ()
        self.text_with_counts = lru_cache(maxsize=65536)(self._text_with_counts)

    # -- text --------------------------------------------------------------------

    def text(self, text: str) -> str:
        """The sanitized form of ``text``."""
        return self.text_with_counts(text)[0]

    def _text_with_counts(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        if not gate(text):
            return text, ()
        counts: Counter[str] = Counter()
        out = _MAIN.sub(lambda m: self._replace(m, counts), text)
        if self._plugins:
            out = self._detect_secrets(out, counts)
        return out, tuple(sorted(counts.items()))

    def _replace(self, match: re.Match[str], counts: Counter[str]) -> str:
        kind = match.lastgroup
        value = match.group()
        if kind in ("pk", "token"):
            counts["secret"] += 1
            return REDACTED
        if kind == "bearer":
            counts["secret"] += 1
            return value.split(None, 1)[0] + " " + REDACTED
        if kind == "kv":
            return self._keyword_value(value, counts)
        if kind == "url":
            return self._url(value, counts)
        if kind == "email":
            counts["email"] += 1
            return EMAIL
        if kind in ("ipv4", "ipv6"):
            host, _, port = (
                value.rpartition(":")
                if kind == "ipv4" and value.count(":") == 1
                else (value, "", "")
            )
            generalised = generalise_ip(host)
            if generalised == host:
                return value
            counts["ip"] += 1
            return generalised + (f":{port}" if port else "")
        if kind == "path":
            return self._path(value, counts)
        if kind == "opaque" and _is_opaque_secret(value):
            counts["secret"] += 1
            return REDACTED
        return value

    def _keyword_value(self, text: str, counts: Counter[str]) -> str:
        split = _KV_SPLIT.match(text)
        if split is None:  # pragma: no cover - the pattern always has an assignment
            counts["secret"] += 1
            return REDACTED
        head, quote, value, closing = split.groups()
        scheme = ""
        lowered = value.lower()
        for word in ("bearer ", "basic ", "token "):
            if lowered.startswith(word):
                scheme, value = value[: len(word)], value[len(word) :].lstrip()
        if _looks_secret(value, head):
            counts["secret"] += 1
            return f"{head}{quote}{scheme}{REDACTED}{closing}"
        return f"{head}{quote}{scheme}{self.text(value)}{closing}"

    def _url(self, url: str, counts: Counter[str]) -> str:
        trail = ""
        while url and url[-1] in _TRAILING:
            trail, url = url[-1] + trail, url[:-1]
        scheme, _, rest = url.partition("://")
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, tail = rest[:cut], rest[cut:]
        credentials = ""
        if "@" in authority:
            credentials, authority = f"{REDACTED}@", authority.rsplit("@", 1)[1]
            counts["secret"] += 1
        host = self._host(authority, counts)
        path = tail.split("?", 1)[0].split("#", 1)[0]
        kept = ""
        if path and any((authority + path).startswith(p) for p in self.policy.url_prefixes):
            kept = "/".join(self.text(segment) for segment in path.split("/"))
        elif tail and tail != "/":
            counts["url"] += 1
        return f"{scheme}://{credentials}{host}{kept}{trail}"

    def _host(self, authority: str, counts: Counter[str]) -> str:
        host, port = authority, ""
        if authority.startswith("["):
            host, _, port = authority[1:].partition("]")
            port = port.lstrip(":")
        elif authority.count(":") == 1:
            host, port = authority.split(":")
        generalised = generalise_ip(host)
        if generalised != host:
            counts["ip"] += 1
            host = f"[{generalised}]" if ":" in generalised else generalised
        elif _SECRETISH.search(host):
            host = _MAIN.sub(lambda m: self._replace(m, counts), host)
        return host + (f":{port}" if port.isdigit() else "")

    def _path(self, path: str, counts: Counter[str]) -> str:
        trail = ""
        while path and path[-1] in _TRAILING:
            trail, path = path[-1] + trail, path[:-1]
        if any(path.startswith(prefix) for prefix in self.policy.path_prefixes):
            return path + trail
        counts["path"] += 1
        return PATH + trail

    def _detect_secrets(self, text: str, counts: Counter[str]) -> str:
        probe = text
        for placeholder in _PLACEHOLDERS:
            probe = probe.replace(placeholder, " ")
        if not _SECRETISH.search(probe):
            return text
        found: set[str] = set()
        for plugin in self._plugins:
            for raw in plugin.analyze_string(probe):
                value = raw.strip(" \t\"'=:") if isinstance(raw, str) else ""
                if not value or len(value) < 4 or value in _PLACEHOLDERS:
                    continue
                limit = getattr(plugin, "entropy_limit", None)
                if limit is not None and plugin.calculate_shannon_entropy(value) <= limit:
                    continue
                found.add(value)
        for value in sorted(found, key=len, reverse=True):
            if value in text:
                counts["secret"] += 1
                text = text.replace(value, REDACTED)
        return text

    # -- events ------------------------------------------------------------------

    def pseudonym(self, session_id: str) -> str:
        """Session ids can be bearer credentials: keep them countable, not usable."""
        digest = hashlib.sha256(f"{self.policy.session_salt}:{session_id}".encode()).hexdigest()
        return "s-" + digest[:16]

    def event(
        self, event: Mapping[str, Any], redactions: Redactions | None = None
    ) -> dict[str, Any]:
        """A copy of a (normalised) event with every free-text field sanitized."""
        out: dict[str, Any] = {}
        for key, value in event.items():
            if key in _STRUCTURAL or not isinstance(value, str):
                out[key] = value
            elif key == "session_id":
                out[key] = (
                    value if value.startswith("s-") and len(value) == 18 else self.pseudonym(value)
                )
            else:
                clean, counts = self.text_with_counts(value)
                out[key] = cut_text(clean, MAX_MESSAGE) if key == "error_message" else clean
                if redactions is not None:
                    for name, n in counts:
                        redactions.counts[name] += n
        return out

    def events(self, events: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
        for event in events:
            yield self.event(event)


def _detect_secrets_plugins() -> tuple[Any, ...]:
    """Every detect-secrets plugin except its public-IP rule (IPs are generalised here)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins: list[Any] = []
    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    for cls in classes:
        if cls.__name__ == "IPPublicDetector":
            continue
        plugins.append(cls())
    return tuple(sorted(plugins, key=lambda p: type(p).__name__))
