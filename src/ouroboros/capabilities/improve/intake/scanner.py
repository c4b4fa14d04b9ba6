"""The full scan: one left-to-right pass over folded text, a handler per construct.

:data:`_MAIN` finds the next construct — a placeholder, a PEM block, a URL, an e-mail
address (also ``[at]``/``(dot)`` spellings), a quoted value compared with a secret's
name, a timestamp, an IP address, a path, a duration, a run of digits, a word, or else
a token — and its handler emits the kept text or a placeholder and says where to go
on. Tokens carry the rest: a secret's name (``db_pass``, ``--password``, ``X-Api-Key``)
takes the value after it in any separator style; command lines (``mysql -pX``, ``curl
-u user:X``, ``sshpass -p X``) and auth schemes (``Bearer X``) take theirs.

Two rules keep the scan idempotent (a second pass changes nothing): text glued to a
placeholder is judged as a plain token, and lookaheads treat ``<`` like a letter, so
the decisions made next to a value are the same next to its placeholder.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ouroboros.capabilities.improve.intake import secret_rules as rules
from ouroboros.capabilities.improve.intake import token_shapes as shapes
from ouroboros.capabilities.improve.intake.placeholders import (
    KNOWN_PLACEHOLDERS,
    PLACEHOLDER,
    PLACEHOLDER_RE,
    family,
)
from ouroboros.capabilities.improve.intake.plain_tokens import TRAILING, classify

#: What follows the local part of an address written out: `` at example dot org``,
#: ``[at]example[dot]org``, ``(@)example.org``.
_SPELT_DOMAIN = (
    r"\s*(?i:\[at\]|\(at\)|\{at\}|<at>|\[@\]|\(@\))\s*[A-Za-z0-9\-]{1,63}+"
    r"(?:\s*(?i:\[dot\]|\(dot\)|\{dot\}|<dot>)\s*[A-Za-z0-9\-]{1,63}+|\.[A-Za-z0-9\-]{1,63}+)+"
    r"|\s+(?i:at)\s+[A-Za-z0-9\-]{1,63}+(?:\s+(?i:dot)\s+[A-Za-z0-9\-]{1,63}+)+"
)
_AFTER_LOCAL_PART = re.compile(_SPELT_DOMAIN)
# Lookaheads treat "<" like a letter: a placeholder may later stand where a letter was,
# and a second pass must make the same decisions as the first (idempotence).
_MAIN = re.compile(
    r"(?P<ph>" + PLACEHOLDER + ")"
    r"|(?P<pem>-----BEGIN[ A-Z0-9_\-]{0,60}-----(?s:.*?)(?:-----END[ A-Z0-9_\-]{0,60}-----|\Z))"
    r"|(?P<putty>PuTTY-User-Key-File-\d+:(?s:.*)\Z)"
    r"|(?P<url>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s\"'<>`]*)"
    r"|(?P<email>(?<![\w.%+\-])(?!-)[\w.+\-]{1,64}+(?:@|%40|&#0*64;|&#[xX]0*40;|&commat;)"
    r"[A-Za-z0-9\-]{1,63}+(?:\.[A-Za-z0-9\-]{1,63}+)*+)"
    r"|(?P<obfuscated>(?<![\w.%+\-])[\w.+\-]{1,64}+(?:" + _SPELT_DOMAIN + "))"
    r"|(?P<compared>(?P<q>[\"'`])(?P<cv>(?:(?!(?P=q))[^\n]){1,300})(?P=q)"
    r"(?P<cop>\s*[!=]==?\s*)(?=@?(?P<ck>[\w.\-]{1,60})))"
    r"|(?P<word>[A-Za-z]{1,24}+(?=[ \t\n]|\Z))"
    r"|(?P<ts>(?<![\w.])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w<]))"
    r"|(?P<ip6>(?<![\w:.])\[?(?:[0-9A-Fa-f]{0,4}+:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[\w.]+)?\]?(?::\d{1,5})?(?![\w.<]|:[\w:<]))"
    r"|(?P<ip4>(?<![\w.])(?:(?:0[xX][0-9a-fA-F]{1,8}+|\d{1,10}+)\.){3}(?:0[xX][0-9a-fA-F]{1,8}+|\d{1,10}+)"
    r"(?::\d{1,5})?(?![\w<]|\.[\w<]))"
    r"|(?P<unc>(?<![\w\\])\\\\[\w.$\-]+\\[^\s\"'<>|]*)"
    r"|(?P<win>(?<!\w)[A-Za-z]:[\\/][^\s\"'<>|]*)"
    r"|(?P<path>(?<![\w.~\\/<>\-])(?:~|\.{1,2})?/[^\s\"'<>`()\[\]{},;|]+)"
    r"|(?P<dur>(?<![\w.])\d{1,6}+(?:[.,]\d{1,6}+)?\s?(?:ns|us|µs|μs|ms|s|secs?|seconds?|m|mins?|minutes?"
    r"|h|hrs?|hours?|d|days?|weeks?|[KMGTP]i?B|[kmgt]b|bytes?|B|%|x)(?![\w<]))"
    # a group after a space must end at a word's end ("08 30 64 74 05 4aaa" is a number,
    # then a word), and no group may lead into a separator and a letter ("4718)0.P"):
    # the chain is possessive, and once it ran into either it was no number at all; a
    # group after a ")" that runs into a letter ends the chain before the ")" instead
    # ("02 32 41 73 12)7a" is a phone, then text)
    r"|(?P<num>(?<![\w.])[+(]?\d{1,19}+(?:(?:[.\-/]\(?\d{1,19}+"
    r"|\)[.\-/]?\(?\d{1,19}+(?![^\W\d])"
    r"|(?:\)? \(?|\) )\d{1,19}+(?![^\W\d]|<))(?![.\-/][^\W\d_])){0,8}+"
    r"(?![\w<]|[.\-/][^\W\d_]|[:%][^\W_]))"
    r"|(?P<tok>[^\s\"'`<>()\[\]{},;|]+)"
)
_TOKEN = re.compile(r"[^\s\"'`<>()\[\]{},;|]+")
#: A replaced value this long or longer is also replaced wherever else it stands (the
#: first ``_ECHO_MAX`` such values of a text: an echo is an error repeating the one or two
#: secrets of its call, and the rescan must not grow with a flood of them).
_ECHO_MIN = 4
_ECHO_MAX = 64
_VALUE = r"(?P<val>@?(?P<vq>\\?[\"'`])(?:(?!(?P=vq))[^\n]){0,400}?(?P=vq)|[^\s\"'`]+)"
_STRONG = re.compile(
    r"(?P<sep>(?:\[\d{0,4}\])?\\?[\"'`]?\]?[ \t]{0,3}(?:=>|:=|===?|!==?|->|=|:)[ \t]{0,8}"
    r"|[ \t]*\([ \t]*(?=@?\\?[\"'`]))" + _VALUE
)
# After a name and only a space ("password hunter2"), the value is the next token as
# the scan would see it, so a second pass finds the same boundaries.
_WEAK = re.compile(r"(?P<sep>[ \t]+(?:(?i:is|was)[ \t]+)?)(?P<val>[^\s\"'`<>()\[\]{},;|]+)")
_AFTER_SEP = re.compile(r"(?P<sep>[ \t]{0,8})" + _VALUE)
_NEXT_VALUE = re.compile(r"(?P<sep>[ \t]+)" + _VALUE)
_USER_VALUE = re.compile(r"(?P<sep>[ \t]+|=)?(?P<val>(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'])+)")
_SEPARATOR = re.compile(r"[:=]+")
_ADDRESS_IN_HOST = re.compile(r"\d{1,3}[-.]\d{1,3}[-.]\d{1,3}[-.]\d{1,3}")
_PORT = re.compile(r":\d{1,5}")
_HOSTNAME = re.compile(r"[^\W_](?:[\w\-]*[^\W_])?(?:\.[^\W_](?:[\w\-]*[^\W_])?)*\.?")
_LEAD = re.compile(r"[^\w\s]+")
_SEPARATING = re.compile(r"[=:!#%^&*+?,;|'\"`]")
_PATH_START = re.compile(r"(?:~|\.{1,2})?/|\\\\")
_GLUED = re.compile(r"[^\s\"'`]+")
_STRUCTURES = frozenset({"email", "obfuscated", "url", "pem", "putty", "num", "ip4", "ip6",
                         "path", "unc", "win", "ts", "dur"})  # fmt: skip
_NUGET_VALUE = re.compile(r"(?P<sep>\s+value\s*=\s*)(?P<val>\"[^\"\n]*\"|'[^'\n]*')")
_QUOTED = re.compile(r"(?P<at>@?)(?P<open>\\?[\"'`])(?P<inner>.*)(?P=open)", re.DOTALL)
_NUMERIC = re.compile(r"[\d\s.,:+\-/()]+")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*[.,;:!?]*")
_MAC = re.compile(r"(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}")
_MAY_CONTINUE = re.compile(r"[\[\]\d\\\"'`\s:=>!\-(@]{0,16}")
_NO_WORD = re.compile(r"[^\w<]*")
_GENERIC_BLOBS = frozenset({"token", "hex", "secret:high-entropy"})


@dataclass(frozen=True)
class RedactionPolicy:
    """What may survive verbatim (path prefixes, URL prefixes ``host/path``), and an
    optional second labeller for tokens our own rules cannot name."""

    path_prefixes: tuple[str, ...] = ()
    url_prefixes: tuple[str, ...] = ()
    labeller: Callable[[str], str | None] | None = None


def _already_redacted(value: str) -> bool:
    """A known placeholder with at most punctuation after it (``<email>``, ``<n>),``)."""
    head = PLACEHOLDER_RE.match(value)
    return (
        head is not None
        and head.group() in KNOWN_PLACEHOLDERS
        and _NO_WORD.fullmatch(value, head.end()) is not None
    )


def split_point(token: str) -> tuple[int, int]:
    """The first run of ``:``/``=`` with text on both sides (a name and its value), or -1."""
    match = _SEPARATOR.search(token, 1)
    if match is None or match.end() >= len(token):
        return -1, -1
    return match.start(), match.end()


def strip_quotes(value: str) -> str:
    quoted = _QUOTED.fullmatch(value)
    return quoted.group("inner") if quoted else value


class Scan:
    """One left-to-right pass; each handler appends output and returns where to resume."""

    def __init__(self, text: str, policy: RedactionPolicy, counts: Counter[str]) -> None:
        self.text = text
        self.policy = policy
        self.counts = counts
        self.out: list[str] = []
        self.cli_until = -1  # inside a command line whose -p/-a argument is a password
        self.open_end = False  # a value was looked for past the end (for Redactor's cache)
        self.judged_until = -1  # end of the token whose pieces are being scanned
        #: Values replaced because a secret's name stood before them -> their label: the
        #: same bytes elsewhere in the text ("ValueError: rejected <the token>") go too.
        self.echoes: dict[str, str] = {}
        self.keyed: set[int] = set()  # where those values start after their names

    def run(self) -> str:
        total, self.counts = self.counts, Counter()
        result = self._scan()
        if self.echoes:
            # A value replaced after a secret's name may stand elsewhere with no name
            # before it ("ValueError: rejected <the token>"), looking like words, or be
            # cut in pieces by what is glued to it: every occurrence is replaced in the
            # text first and the text scanned again. Placeholders are left whole (a value
            # may be "secret"), and so are the values after their names: the second scan
            # decides those as the first did ("pw=bob at example dot org" goes whole).
            echoed: Counter[str] = Counter()
            text = _replace_echoes(self.text, self.echoes, self.keyed, echoed)
            again = Scan(text, self.policy, Counter())
            result = again._scan()
            self.counts = again.counts + echoed
            self.open_end |= again.open_end
        total.update(self.counts)
        self.counts = total
        return result

    def _scan(self) -> str:
        text, pos, end = self.text, 0, len(self.text)
        search, out, handlers = _MAIN.search, self.out, _HANDLERS
        while pos < end:
            match = search(text, pos)
            if match is None:
                break
            out.append(text[pos : match.start()])
            pos = handlers[match.lastgroup](self, match)  # type: ignore[index]
            if out and out[-1].endswith(">") and pos < end:
                glued = _TOKEN.match(text, pos)
                if glued is not None and out[-1].startswith(("<ip", "<token>")) and \
                        _PORT.fullmatch(glued.group()):
                    # "<ip:private>:5432", "A0://<token>:8080": the port stays, as it did
                    # when the host was replaced (`_host`), so a second pass changes nothing
                    out.append(glued.group())
                    pos = glued.end()
                elif glued is not None and out[-1] == "<secret:url-credentials>" and \
                        glued.group().startswith("@"):
                    pos = self._after_credentials(glued)
                elif glued is not None:
                    # Text glued to a placeholder ("a@b.c::1", "<n>&password=x") is read
                    # as a token, never as the start of an address: the replacement must
                    # not change how it is read next time.
                    pos = self._token(glued, glued=True)
        out.append(text[pos:])
        return "".join(out)

    # -- emitting ------------------------------------------------------------------------

    def _emit(self, label: str) -> None:
        self.out.append(f"<{label}>")
        name = family(label)
        if name is not None:
            self.counts[name] += 1

    def _emit_classified(self, token: str) -> None:
        replacement, label = classify(token)
        if label in _GENERIC_BLOBS and self.policy.labeller is not None:
            named = self.policy.labeller(token.rstrip(TRAILING))
            if named is not None:
                label = f"secret:{named}"
                replacement = f"<{label}>" + token[len(token.rstrip(TRAILING)) :]
        self.out.append(replacement)
        if label is not None:
            name = family(label)
            if name is not None:
                self.counts[name] += 1

    def _look(self, pattern: re.Pattern[str], at: int) -> re.Match[str] | None:
        """``pattern`` at ``at``, noting when that is the end: the value may follow it."""
        if _MAY_CONTINUE.fullmatch(self.text, at):
            self.open_end = True  # nothing, or only a separator's beginning, up to the end
        return pattern.match(self.text, at)

    def _keep(self, match: re.Match[str]) -> int:
        self.out.append(match.group())
        return match.end()

    # -- structures ----------------------------------------------------------------------

    def _placeholder(self, match: re.Match[str]) -> int:
        if match.group() in KNOWN_PLACEHOLDERS:
            return self._keep(match)
        self.out.append("<")  # not ours: what is inside is scanned like any text
        return match.start() + 1

    def _pem(self, match: re.Match[str]) -> int:
        header = match.group()[:80]
        self._emit("secret:private-key" if "PRIVATE" in header else "pem")
        return match.end()

    def _putty(self, match: re.Match[str]) -> int:
        self._emit("secret:private-key")
        return match.end()

    def _email(self, match: re.Match[str]) -> int:
        self._emit("email")
        return match.end()

    def _time(self, match: re.Match[str]) -> int:
        self._emit("time")
        return match.end()

    def _compared(self, match: re.Match[str]) -> int:
        """``"hunter2" == password``: a quoted value compared with a secret's name."""
        label = rules.key_label(match.group("ck"))
        if label is None:
            return self._token_at(match.start())
        quote = match.group("q")
        self.out.append(quote)
        self._emit(f"secret:{label}")
        self.out.append(quote + match.group("cop"))
        return match.end()

    def _ip(self, match: re.Match[str]) -> int:
        value = match.group()
        host, port = value, ""
        if value.startswith("["):
            host, _, port = value[1:].partition("]")
            port = port.lstrip(":")
        elif value.count(":") == 1:
            host, _, port = value.partition(":")
        address = shapes.parse_ip(host) if ":" in host else _dotted_quad(host)
        if address is None and host.endswith(":") and not host.endswith("::"):
            # "2a00:e47a::d247: …": the pattern took the colon after the address, which
            # then parsed as nothing, and after "x=" its pieces were read as words
            address = shapes.parse_ip(host[:-1])
            if address is not None:
                self._emit(shapes.ip_label(address))
                self.out.append(":")
                return match.end()
        if address is None or (":" in host and not any(c.isalnum() for c in host)):  # "::"
            if _MAC.fullmatch(value):
                self._emit("mac")
                return match.end()
            if value.endswith(":") and _MAC.fullmatch(value[:-1]):  # the same, then a colon
                self._emit("mac")
                self.out.append(":")
                return match.end()
            return self._token_at(match.start())
        self._emit(shapes.ip_label(address))
        if port.isdigit():
            self.out.append(f":{port}")
        return match.end()

    def _number(self, match: re.Match[str]) -> int:
        chain = match.group()
        if chain.startswith("(") and ")" not in chain:  # "(4100 characters": the "(" is prose
            self.out.append("(")
            chain = chain[1:]
        label = shapes.number_label(chain)
        if label is None:
            self.out.append(chain)
            return match.end()
        digits = sum(c.isdigit() for c in chain)
        if label == "n" and " " in chain and digits < 7:  # "retry 3 4567": one by one
            for i, piece in enumerate(chain.split(" ")):
                if i:
                    self.out.append(" ")
                piece_label = shapes.number_label(piece)
                if piece_label is None:
                    self.out.append(piece)
                else:
                    self._emit(piece_label)
            return match.end()
        self._emit(label)
        return match.end()

    def _whole_path(self, match: re.Match[str]) -> int:
        value = match.group()
        core = value.rstrip(TRAILING)
        self._emit("path")
        return self._path_end(match, value, core)

    def _path_end(self, match: re.Match[str], value: str, core: str) -> int:
        """After a replaced path: a written-out domain right after it (``/x=bob at example
        dot org``) belongs to an address whose local part the path took, and goes too; a
        value after a secret's name the path took (``/=api_key = value``) is replaced."""
        tail = core.rstrip(":=")
        last = _SEPARATOR.split(tail)[-1]
        label = rules.key_label(last) if last and last != tail and core == value else None
        if label is not None:  # "/=api_key = value": the path took the secret's name
            strong = self._look(_STRONG, match.end())
            if strong is not None:
                self.out.append(strong.group("sep"))
                return self._decide(strong.group("val"), strong.start("val"),
                                    strong.end("val"), label, True, last)
        domain = _AFTER_LOCAL_PART.match(self.text, match.end()) if core == value else None
        if domain is not None:
            return domain.end()
        self.out.append(value[len(core) :])
        return match.end()

    def _path(self, match: re.Match[str]) -> int:
        value = match.group()
        core = value.rstrip(TRAILING)
        if any(core.startswith(p) for p in self.policy.path_prefixes) and all(
            classify(seg)[1] is None for seg in core.split("/") if seg
        ):
            return self._keep(match)
        self._emit("path")
        return self._path_end(match, value, core)

    def _url(self, match: re.Match[str]) -> int:
        url = match.group()
        core = url.rstrip(TRAILING)
        scheme, _, rest = core.partition("://")
        cut = min((i for i in (rest.find(c) for c in "/?#\\") if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, min((i for i in (rest.find(c) for c in "/\\") if i >= 0),
                                    default=len(rest)))  # fmt: skip
        if at > cut:  # "user:pa?ss@host": a "?" or "#" in the password, not a query
            cut = len(rest) if (slash := rest.find("/", at)) < 0 else slash
        authority, tail = rest[:cut], rest[cut:]
        self.out.append(f"{scheme}://")
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
            if userinfo:
                self._emit("secret:url-credentials")
                self.out.append("@")
        self._host(authority)
        self._url_path(authority, tail)
        self.out.append(url[len(core) :])
        return match.end()

    def _url_path(self, authority: str, tail: str) -> None:
        """A URL's path kept where the policy allows it (each segment judged), else dropped."""
        path = tail.replace("\\", "/").split("?", 1)[0].split("#", 1)[0]
        if path and any((authority + path).startswith(p) for p in self.policy.url_prefixes):
            for segment in re.split(r"(/)", path):
                if segment and segment != "/":
                    self._emit_classified(segment)
                else:
                    self.out.append(segment)
        elif tail and tail != "/":
            self.counts["url"] += 1

    def _after_credentials(self, match: re.Match[str]) -> int:
        """``@host:port/path`` glued to a URL's redacted credentials (text sanitized
        before): read as the URL read it, so a second pass keeps what the first kept."""
        token = match.group()
        core = token.rstrip(TRAILING)
        rest = core[1:]
        cut = min((i for i in (rest.find(c) for c in "/?#\\") if i >= 0), default=len(rest))
        self.out.append("@")
        self._host(rest[:cut])
        self._url_path(rest[:cut], rest[cut:])
        self.out.append(token[len(core) :])
        return match.end()

    def _host(self, authority: str) -> None:
        host, port = authority, ""
        if authority.startswith("["):
            host, _, port = authority[1:].partition("]")
            port = port.lstrip(":")
        elif authority.count(":") == 1:
            host, _, port = authority.partition(":")
        address = shapes.parse_ip(host) if host else None
        if address is not None:
            self._emit(shapes.ip_label(address))
        elif host:
            # A host name is kept whole or not at all: a placeholder inside it would end
            # the URL early when the text is read again.
            if (
                _HOSTNAME.fullmatch(host)
                and not _ADDRESS_IN_HOST.search(host)  # ip-10-0-5-6.ec2.internal
                and all(classify(label)[1] is None for label in host.split(".") if label)
            ):
                self.out.append(host)
            else:
                self._emit("token")
        if port:
            self.out.append(":")
            if _PORT.fullmatch(":" + port):
                self.out.append(port)
            elif port.isdigit():
                self._emit("n")  # too long for a port: a number like any other
            else:
                self._emit("token")  # not a port: a password without its user, perhaps

    # -- tokens, names and values --------------------------------------------------------

    def _token_at(self, start: int) -> int:
        match = _TOKEN.match(self.text, start)
        if match is None:  # a delimiter: pass it through
            self.out.append(self.text[start])
            return start + 1
        return self._token(match)

    def _token(self, match: re.Match[str], glued: bool = False) -> int:
        """A token: a command, a flag, an auth scheme, a name and its value, or plain.

        ``glued`` tokens follow a placeholder with no space between: they were part of
        a longer token before the replacement, so they get no token-start readings
        (commands, flags, auth schemes), which a second pass could not repeat.
        """
        token, start, end = match.group(), match.start(), match.end()
        if 0 <= self.cli_until < start:
            self.cli_until = -1
        lead = _LEAD.match(token)
        if lead is not None and lead.end() < len(token):
            cut = self._lead_cut(lead.group(), start)
            if cut:
                self.out.append(token[:cut])
                return start + cut  # what follows is scanned as a token start
        if not glued:
            resume = self._token_start(token, start, end)
            if resume >= 0:
                return resume
        judged = start < self.judged_until  # the rest of a token already judged whole
        if not judged and rules.rule_label(token) is not None:
            return self._rule_span(token, start)
        split, split_end = split_point(token)
        if split > 0:
            head = token[:split]
            key = rules.key_label(head.rsplit("?", 1)[-1].rsplit("&", 1)[-1])
            if key is not None:
                self._emit_classified(head)
                return self._keyed_value(head, start + split, start + split_end, key)
            if (
                not judged
                and classify(token)[1] not in (None, "n")
                and not self._structure_beyond_a_separator(token, start, end)
            ):  # a blob with a "=" or ":" in it ("a-0bge_854a=ese/yn3…"), not name=value
                self._emit_classified(token)
                return end
            # Every piece of a token that is kept whole is kept too: once judged, the rest
            # needs no second look (which would make "a=a=a=…" quadratic).
            self.judged_until = max(self.judged_until, end)
            self._emit_classified(head)
            self.out.append(token[split:split_end])
            return start + split_end  # the rest is scanned as if it started a token
        key_token = token.rstrip(":=")
        key = rules.key_label(key_token) if key_token else None
        if key is not None and classify(key_token)[1] is not None:
            key = None  # "32AKIA0123456789pass" ends like a name but is no name
        if key is not None:
            return self._keyed(token, key_token, start, end, key)
        self._emit_classified(token)
        return end

    def _lead_cut(self, lead: str, start: int) -> int:
        """Where the punctuation leading a token ends, for ``"=/home/x"``, ``"!ghp_…"``,
        ``"@=a@b.c"``, ``"-d @/Users/bob/x.json"``; 0 to read the token whole.

        The cut is never after the start of a path: ``"=/Users/bob/…"`` must reach the
        path handler from its first character, or its pieces pass as plain words.
        """
        cut = max((m.end() for m in _SEPARATING.finditer(lead)), default=0)
        if cut:
            return cut  # what follows the last separator starts a token (maybe a path)
        path = _PATH_START.search(lead, 1)
        if path is not None:
            structure = _MAIN.match(self.text, start + path.start())
            if structure is not None and structure.lastgroup in ("path", "unc"):
                return path.start()
        return 0

    def _token_start(self, token: str, start: int, end: int) -> int:
        """Readings only a token that starts after a space can have; -1 if none applies."""
        text, lowered = self.text, token.lower()
        if lowered.rsplit("/", 1)[-1] in rules.PASSWORD_COMMANDS:
            newline = text.find("\n", end)
            self.cli_until = len(text) if newline < 0 else newline
            self._emit_classified(token)
            return end
        if self.cli_until >= 0 and token in rules.PASSWORD_FLAGS:
            self.out.append(token)
            return self._value_after(token, end, _NEXT_VALUE, "password", strong=True)
        if _attached_password(token):  # mysql -pSECRET
            self.out.append("-p")
            self._emit("secret:password")
            return end
        if lowered in ("-u", "--user") or (lowered.startswith(("--user=", "-u")) and ":" in token):
            return self._user_password(token, start, end)
        if lowered in rules.AUTH_SCHEMES and not self._look(_STRONG, end):
            credential = self._look(_NEXT_VALUE, end)
            if credential is not None and not self._plainly_not_secret(
                strip_quotes(credential.group("val")), strong=False
            ):
                self.out.append(token)
                return self._auth_scheme(end, lowered)
        return -1

    def _rule_span(self, token: str, start: int) -> int:
        """A named format inside a token: the text before it is a token of its own."""
        inner = rules.first_rule_match(token)
        if inner is None:  # pragma: no cover - rule_label found one
            self._emit_classified(token)
            return start + len(token)
        label, begin, finish = inner
        if begin:
            self._emit_classified(token[:begin])
        self._emit(f"secret:{label}")
        return start + finish

    def _keyed(self, token: str, key_token: str, start: int, end: int, label: str) -> int:
        """A secret's name as a token of its own: find its value after it."""
        text = self.text
        self._emit_classified(key_token)
        if token != key_token:  # "password:" / "token=": the separator is in the token
            self.out.append(token[len(key_token) :])
            return self._value_after(key_token, end, _AFTER_SEP, label, strong=True)
        if end >= len(text):
            self.open_end = True
        if start > 0 and text[start - 1] == "<" and text.startswith(">", end):  # <password>…<
            close = text.find("<", end + 1)
            close = len(text) if close < 0 else close
            if close > end + 1:
                self.out.append(">")
                return self._decide(text[end + 1 : close], end + 1, close, label, strong=True)
        strong = self._look(_STRONG, end)
        if strong is not None:
            self.out.append(strong.group("sep"))
            return self._decide(
                strong.group("val"), strong.start("val"), strong.end("val"), label, True, key_token
            )
        return self._value_after(token, end, _WEAK, label, strong=False)

    def _keyed_value(self, head: str, sep_at: int, sep_end: int, label: str) -> int:
        """``key=value``, ``key:value``, ``key==value`` inside one token, or ``key=`` then a value."""
        self.out.append(self.text[sep_at:sep_end])
        return self._value_after(head, sep_end, _AFTER_SEP, label, strong=True)

    def _value_after(
        self, key: str, at: int, pattern: re.Pattern[str], label: str, *, strong: bool
    ) -> int:
        match = self._look(pattern, at)
        if match is None or not match.group("val"):
            return at
        self.out.append(match.group("sep"))
        return self._decide(
            match.group("val"), match.start("val"), match.end("val"), label, strong, key
        )

    def _remember(self, value: str, at: int, label: str) -> None:
        """Note a replaced value so its echoes elsewhere in the text are replaced too; the
        occurrence at ``at`` is the one already handled (a key's own value)."""
        if len(value) >= _ECHO_MIN and len(self.echoes) < _ECHO_MAX:
            self.echoes.setdefault(value, label)
            self.keyed.add(at)

    def _decide(
        self, raw: str, begin: int, finish: int, label: str, strong: bool, key: str = ""
    ) -> int:
        """Replace the value of a secret's name, unless it is plainly not a secret."""
        if raw[:1] not in "\"'`\\@":
            covered = self._structure_covering(begin, raw)
            if covered == begin:
                return begin  # an address, a number: its own handler redacts all of it
            if covered > begin:  # "x at y dot z=0": the structure and what is glued to it
                self._emit(f"secret:{label}")
                return covered
        if raw.lower() in rules.AUTH_SCHEMES:  # Authorization: Bearer <value>
            self.out.append(raw)
            return self._auth_scheme(finish, raw.lower())
        if label == "session" and key.lower().lstrip("-").startswith(("cookie", "set-cookie")):
            newline = self.text.find("\n", begin)
            if newline < 0:
                self.open_end = True  # the cookie runs to the end of a line we cannot see
            finish = len(self.text) if newline < 0 else newline
            raw = self.text[begin:finish]
        quoted = _QUOTED.fullmatch(raw) is not None
        if not quoted:
            stripped = raw.rstrip(",;")
            finish -= len(raw) - len(stripped)
            raw = stripped
        value = strip_quotes(raw) if quoted else raw
        named = rules.key_label(value) if key.lower() in ("key", "name") else None
        if named is not None:  # <add key="ClearTextPassword" value="…"/>: the name, then its value
            self.out.append(raw)
            attribute = _NUGET_VALUE.match(self.text, finish)
            if attribute is None:
                return finish
            self.out.append(attribute.group("sep"))
            self._emit_quoted(attribute.group("val"), f"secret:{named}")
            return attribute.end()
        if self._plainly_not_secret(value, strong):
            return begin  # scan the value like any text
        if _NUMERIC.fullmatch(value) and any(c.isdigit() for c in value):
            self._remember(value, begin + raw.find(value), "n")
            self._emit_quoted(raw, "n") if quoted else self._emit("n")
            return finish
        final = f"secret:{self._name(value) or label}"
        self._remember(value, begin + raw.find(value), final)
        if quoted:
            self._emit_quoted(raw, final)
            return finish
        self._emit(final)
        # "pw=PASSWORD=bob at example dot org": the value was an address's local part.
        domain = _AFTER_LOCAL_PART.match(self.text, finish)
        return finish if domain is None else domain.end()

    def _structure_beyond(self, at: int, end: int) -> bool:
        """An address, URL or number starts at ``at`` and runs to ``end`` or past it
        (``a&commat;b.org``): the token is a name and a value, not one blob."""
        structure = _MAIN.match(self.text, at)
        return (
            structure is not None
            and structure.lastgroup in _STRUCTURES
            and structure.end() >= end
        )

    def _structure_beyond_a_separator(self, token: str, start: int, end: int) -> bool:
        """After one of the token's first eight separators starts an address, URL or number
        that runs to its end or past (``_structure_beyond``), or the token ends in a
        secret's name or a command that takes a password: read as one blob,
        ``x0Q=PASSWORD=bob at example dot org`` kept its spelt-out domain and
        ``x0=db_pass = "…"`` the value after the name."""
        for i, sep in enumerate(_SEPARATOR.finditer(token)):
            if i == 8:
                break
            if self._structure_beyond(start + sep.end(), end):
                return True
        tail = token.rstrip(":=")
        last = _SEPARATOR.split(tail)[-1]
        return bool(last) and last != tail and (
            rules.key_label(last) is not None or last.lower() in rules.PASSWORD_COMMANDS)

    def _structure_covering(self, begin: int, raw: str) -> int:
        """Does an e-mail address, URL, IP, path, number … start the value and cover it?

        Returns ``begin`` when its own handler should redact it (nothing but punctuation
        is glued to its end, so placeholder + punctuation reads as an already-redacted
        value next time), the end of the glued text when value and structure must go
        together as one secret, and -1 when no structure covers the value.
        """
        structure = _MAIN.match(self.text, begin)
        if structure is None or structure.lastgroup not in _STRUCTURES:
            return -1
        if structure.end() < begin + len(raw.rstrip(TRAILING)):
            return -1
        glued = _GLUED.match(self.text, structure.end())
        if glued is None or _NO_WORD.fullmatch(glued.group()):
            return begin
        return glued.end()

    def _name(self, value: str) -> str | None:
        """The format of a value being replaced anyway: our rules, then detect-secrets'."""
        named = rules.rule_label(value) or rules.decoded_label(value)
        if named is None and self.policy.labeller is not None:
            named = self.policy.labeller(value)
        return named

    def _emit_quoted(self, raw: str, label: str) -> None:
        quoted = _QUOTED.fullmatch(raw)
        if quoted is None:
            self._emit(label)
            return
        self.out.append(quoted.group("at") + quoted.group("open"))
        self._emit(label)
        self.out.append(quoted.group("open"))

    @staticmethod
    def _plainly_not_secret(value: str, strong: bool) -> bool:
        if not value or _already_redacted(value):
            return True  # sanitizing twice changes nothing
        lowered = value.lower().rstrip(".,;:!?")
        if lowered in rules.BENIGN_VALUES or rules.TEMPLATE_REFERENCE.fullmatch(value):
            return True
        if strong:
            return False
        # "password rejected", "token bucket", "auth is required": a word, not a value
        return bool(_WORDS.fullmatch(value)) or (value.isdigit() and len(value) <= 3)

    def _auth_scheme(self, end: int, scheme: str) -> int:
        """After ``Bearer``/``Basic``/``token`` (already emitted): the credential, if any."""
        match = self._look(_NEXT_VALUE, end)
        if match is None:
            return end
        value = strip_quotes(match.group("val"))
        if _WORDS.fullmatch(value) and len(value) < 16:  # "Bearer auth is required"
            return end
        self.out.append(match.group("sep"))
        label = "basic-auth" if scheme == "basic" else "bearer-token"
        self._emit(f"secret:{self._name(value) or label}")
        return match.end()

    def _user_password(self, token: str, start: int, end: int) -> int:
        """``curl -u user:pw``, ``--user 'user:pw'``, ``--user=user:pw``, ``-uuser:pw``."""
        flag = token if token.lower() in ("-u", "--user") else token[: 7 if token[1] == "-" else 2]
        match = self._look(_USER_VALUE, start + len(flag))
        if match is None or not match.group("val"):
            self._emit_classified(token)
            return end
        self.out.append(flag + (match.group("sep") or ""))
        user, colon, password = match.group("val").partition(":")
        name = user.strip("\"'")
        if name:  # the user is kept, quotes and all: dropping them changed the text on
            # every pass (`-u"x"y` -> `-ux"y` -> ...), so sanitizing was no fixed point
            start = user.index(name)
            self.out.append(user[:start])
            self._emit_classified(name)
            self.out.append(user[start + len(name):])
        else:
            self.out.append(user)
        self.out.append(colon)
        if password.strip("\"'"):
            self._emit("secret:password")
        return match.end()


_HANDLERS: dict[str, Callable[[Scan, re.Match[str]], int]] = {
    "ph": Scan._placeholder, "pem": Scan._pem, "putty": Scan._putty, "url": Scan._url,
    "email": Scan._email, "obfuscated": Scan._email, "compared": Scan._compared,
    "ts": Scan._time, "ip6": Scan._ip, "ip4": Scan._ip, "unc": Scan._whole_path,
    "win": Scan._whole_path, "path": Scan._path, "dur": Scan._keep, "num": Scan._number,
    "tok": Scan._token, "word": Scan._token,
}  # fmt: skip


def _replace_echoes(text: str, echoes: dict[str, str], keep: set[int],
                    counts: Counter[str]) -> str:
    """``text`` with every occurrence of each value in ``echoes`` (longest first), outside
    a placeholder and those starting at ``keep``, replaced by its placeholder, counted in
    ``counts``."""
    values = sorted(echoes, key=len, reverse=True)
    find = re.compile("|".join(map(re.escape, values)))
    out: list[str] = []
    pos = 0
    for span in PLACEHOLDER_RE.finditer(text):
        out.append(_replace_between(text, pos, span.start(), find, echoes, keep, counts))
        out.append(span.group())
        pos = span.end()
    out.append(_replace_between(text, pos, len(text), find, echoes, keep, counts))
    return "".join(out)


def _replace_between(text: str, start: int, end: int, find: re.Pattern[str],
                     echoes: dict[str, str], keep: set[int],
                     counts: Counter[str]) -> str:
    def placeholder(match: re.Match[str]) -> str:
        if match.start() in keep:
            return match.group()
        label = echoes[match.group()]
        name = family(label)
        if name is not None:
            counts[name] += 1
        return f"<{label}>"

    out: list[str] = []
    pos = start
    for match in find.finditer(text, start, end):
        out.append(text[pos:match.start()])
        out.append(placeholder(match))
        pos = match.end()
    out.append(text[pos:end])
    return "".join(out)


def _attached_password(token: str) -> bool:
    return (
        token.startswith("-p")
        and len(token) > 2
        and token[2:] not in rules.NOT_P_VALUES
        and not token[2:].isdigit()
    )


def _dotted_quad(host: str) -> ipaddress.IPv4Address | None:
    """Four dotted parts: a browser's reading (octal/hex), or plain decimal with zero padding."""
    address = shapes.parse_ipv4(host)
    if address is not None:
        return address
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
    return None

