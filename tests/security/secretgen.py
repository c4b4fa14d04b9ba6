"""Random strings of a secret's real format, for the labelled corpus and the property tests.

``from_regex`` walks Python's own parse of a format regex (the rule sets we derive
formats from publish them as regexes) and draws one matching string with a seeded
RNG, so a format yields realistic, uniformly random values rather than a search
engine's simplest example. The other generators make the formats a regex cannot
say: Luhn-valid card numbers, SSNs, phone numbers, IP literals in every notation,
obfuscated e-mail addresses, encoded and Unicode-split tokens, PEM blocks.

Everything here is test tooling; nothing in ``src`` imports it.
"""

from __future__ import annotations

import base64
import random
import re
import re._constants as sre_c
import re._parser as sre_parse
import string
from collections.abc import Callable
from typing import Any

ALNUM = string.ascii_letters + string.digits
_PRINTABLE = ALNUM + "!#$%&*+-./:=?@^_~"
_UNBOUNDED_EXTRA = 16  # a `+`/`*`/`{n,}` draws up to this many beyond its minimum

_CATEGORY_CHARS = {
    sre_c.CATEGORY_DIGIT: string.digits,
    sre_c.CATEGORY_NOT_DIGIT: string.ascii_letters + "_-",
    sre_c.CATEGORY_WORD: ALNUM + "_",
    sre_c.CATEGORY_NOT_WORD: "-.~+/=",
    sre_c.CATEGORY_SPACE: " ",
    sre_c.CATEGORY_NOT_SPACE: _PRINTABLE,
}


def go_regex_to_python(pattern: str) -> str:
    """Rule sets written for Go's RE2: inline flags mid-pattern and POSIX classes."""
    pattern = pattern.replace("[[:alnum:]]", "[A-Za-z0-9]").replace("[:alnum:]", "A-Za-z0-9")
    pattern = pattern.replace("(?-i:", "(?:").replace("(?i:", "(?:").replace("(?i)", "")
    pattern = pattern.replace(r"\z", r"\Z")
    return pattern


def from_regex(pattern: str, rng: random.Random) -> str:
    """One random string matching ``pattern`` (anchors and lookarounds are ignored)."""
    groups: dict[int, str] = {}
    return _emit(list(sre_parse.parse(pattern)), rng, groups)


def _emit(items: list[Any], rng: random.Random, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, arg in items:
        if op is sre_c.LITERAL:
            out.append(chr(arg))
        elif op is sre_c.NOT_LITERAL:
            out.append(rng.choice([c for c in ALNUM if ord(c) != arg]))
        elif op is sre_c.ANY:
            out.append(".")  # rule sets write host names with unescaped dots
        elif op is sre_c.IN:
            out.append(rng.choice(_charset(arg)))
        elif op is sre_c.BRANCH:
            out.append(_emit(list(rng.choice(arg[1])), rng, groups))
        elif op is sre_c.SUBPATTERN:
            group, _, _, body = arg
            text = _emit(list(body), rng, groups)
            if group is not None:
                groups[group] = text
            out.append(text)
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            low, high, body = arg
            high = low + _UNBOUNDED_EXTRA if high is sre_c.MAXREPEAT else high
            out.extend(_emit(list(body), rng, groups) for _ in range(rng.randint(low, high)))
        elif op is sre_c.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op is sre_c.ATOMIC_GROUP:
            out.append(_emit(list(arg), rng, groups))
        # AT (anchors), ASSERT and ASSERT_NOT (lookarounds) produce nothing
    return "".join(out)


def _charset(items: list[Any]) -> str:
    chars: set[str] = set()
    negate = False
    for op, arg in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            chars.add(chr(arg))
        elif op is sre_c.RANGE:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is sre_c.CATEGORY:
            chars.update(_CATEGORY_CHARS.get(arg, ALNUM))
    if negate:
        return "".join(sorted(set(ALNUM) - chars)) or "x"
    printable = sorted(c for c in chars if c.isprintable() and not c.isspace())
    return "".join(printable) or " "


# -- formats a regex cannot say ------------------------------------------------------


def luhn_complete(prefix_and_body: str) -> str:
    """Appends the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix_and_body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return prefix_and_body + str((10 - total % 10) % 10)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _card(
    rng: random.Random, prefixes: tuple[str, ...], length: int, groups: tuple[int, ...]
) -> str:
    prefix = rng.choice(prefixes)
    number = luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    style = rng.choice(("plain", " ", "-"))
    if style == "plain":
        return number
    parts, at = [], 0
    for size in groups:
        parts.append(number[at : at + size])
        at += size
    return style.join(parts)


def card_visa(rng: random.Random) -> str:
    return _card(rng, ("4",), 16, (4, 4, 4, 4))


def card_mastercard(rng: random.Random) -> str:
    return _card(rng, ("51", "52", "53", "54", "55", "2221", "2720"), 16, (4, 4, 4, 4))


def card_amex(rng: random.Random) -> str:
    return _card(rng, ("34", "37"), 15, (4, 6, 5))


def card_discover(rng: random.Random) -> str:
    return _card(rng, ("6011", "65"), 16, (4, 4, 4, 4))


def ssn_us(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(("-", " "))
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def phone_us(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        (f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"+1 {a} {b} {c:04d}", f"{a}.{b}.{c:04d}",
         f"+1-{a}-{b}-{c:04d}")
    )  # fmt: skip


def phone_e164(rng: random.Random) -> str:
    return "+" + rng.choice(("44", "49", "33", "39", "34", "81", "61")) + _digits(rng, 10)


def phone_uk(rng: random.Random) -> str:
    return f"+44 {rng.randint(20, 29)} {_digits(rng, 4)} {_digits(rng, 4)}"


def phone_de(rng: random.Random) -> str:
    return f"+49 {rng.randint(30, 89)} {_digits(rng, 8)}"


def phone_fr(rng: random.Random) -> str:
    return "0" + str(rng.randint(1, 9)) + "".join(f" {rng.randint(0, 99):02d}" for _ in range(4))


def _public_ipv4(rng: random.Random) -> tuple[int, int, int, int]:
    while True:
        a = rng.randint(1, 223)
        if a not in (10, 127, 169, 172, 192, 100):
            return a, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)


def ipv4_public(rng: random.Random) -> str:
    return ".".join(map(str, _public_ipv4(rng)))


def ipv4_private(rng: random.Random) -> str:
    return rng.choice(
        (f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
         f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
         f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    )  # fmt: skip


def ipv4_zero_padded(rng: random.Random) -> str:
    return ".".join(f"{o:03d}" for o in _public_ipv4(rng))


def ipv4_octal(rng: random.Random) -> str:
    return ".".join(f"0{o:o}" for o in _public_ipv4(rng))


def ipv4_hex_dotted(rng: random.Random) -> str:
    return ".".join(f"0x{o:02x}" for o in _public_ipv4(rng))


def _ipv4_int(rng: random.Random) -> int:
    a, b, c, d = _public_ipv4(rng)
    return (a << 24) | (b << 16) | (c << 8) | d


def ipv4_decimal(rng: random.Random) -> str:
    return str(_ipv4_int(rng))


def ipv4_hex(rng: random.Random) -> str:
    return f"0x{_ipv4_int(rng):08X}" if rng.random() < 0.5 else f"0x{_ipv4_int(rng):08x}"


def ipv4_with_port(rng: random.Random) -> str:
    return f"{ipv4_public(rng)}:{rng.choice((22, 443, 5432, 6379, 8080, 27017))}"


def ipv6_full(rng: random.Random) -> str:
    return "2001:" + ":".join(f"{rng.randint(0, 0xFFFF):04x}" for _ in range(7))


def ipv6_compressed(rng: random.Random) -> str:
    return f"2a0{rng.randint(0, 9)}:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def ipv4_mapped_ipv6(rng: random.Random) -> str:
    return "::ffff:" + ipv4_public(rng)


_FIRST = ("alice", "bob", "carol", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jonas")
_LAST = ("smith", "nguyen", "mueller", "garcia", "okafor", "tanaka", "rossi", "kowalski")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.co.uk")


def _local(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return rng.choice((f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"))


def email_plain(rng: random.Random) -> str:
    return f"{_local(rng)}@{rng.choice(_DOMAINS)}"


def _split_domain(rng: random.Random) -> tuple[str, str]:
    domain = rng.choice(_DOMAINS)
    name, _, tld = domain.rpartition(".")
    return name, tld


def email_at_dot(rng: random.Random) -> str:
    name, tld = _split_domain(rng)
    return f"{_local(rng)} at {name.replace('.', ' dot ')} dot {tld}"


def email_bracketed(rng: random.Random) -> str:
    name, tld = _split_domain(rng)
    at, dot = rng.choice(
        (("[at]", "[dot]"), ("(at)", "(dot)"), ("{at}", "{dot}"), ("<at>", "<dot>"))
    )
    spaced = rng.random() < 0.5
    sep = " " if spaced else ""
    return f"{_local(rng)}{sep}{at}{sep}{name.replace('.', sep + dot + sep)}{sep}{dot}{sep}{tld}"


def email_fullwidth(rng: random.Random) -> str:
    return email_plain(rng).replace("@", "\uff20").replace(".", "\uff0e")


def email_url_encoded(rng: random.Random) -> str:
    return email_plain(rng).replace("@", "%40")


def email_html_entity(rng: random.Random) -> str:
    return email_plain(rng).replace("@", rng.choice(("&#64;", "&#x40;", "&commat;")))


def unc_path(rng: random.Random) -> str:
    host = rng.choice(("fileserver01", "nas-fin", "corpfs", "10.20.30.40"))
    share = rng.choice(("finance$", "hr", "users", "backup$"))
    return (
        f"\\\\{host}\\{share}\\{rng.choice(_FIRST)}\\{rng.choice(('payroll', 'q3', 'keys'))}.xlsx"
    )


def windows_user_path(rng: random.Random) -> str:
    return f"C:\\Users\\{rng.choice(_FIRST)}\\AppData\\Roaming\\app\\credentials.json"


def unix_home_path(rng: random.Random) -> str:
    return f"/home/{rng.choice(_FIRST)}/.ssh/{rng.choice(('id_rsa', 'id_ed25519', 'config'))}"


def macos_user_path(rng: random.Random) -> str:
    return f"/Users/{rng.choice(_FIRST)}/Library/Keychains/login.keychain-db"


def _github_token(rng: random.Random) -> str:
    return "ghp_" + "".join(rng.choice(ALNUM) for _ in range(36))


def hex_encoded_token(rng: random.Random) -> str:
    return _github_token(rng).encode().hex()


def base64_encoded_token(rng: random.Random) -> str:
    return base64.b64encode(_github_token(rng).encode()).decode()


def zero_width_split_token(rng: random.Random) -> str:
    token = _github_token(rng)
    joiner = rng.choice(("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"))
    return joiner.join(token[i : i + 4] for i in range(0, len(token), 4))


def soft_hyphen_split_token(rng: random.Random) -> str:
    token = "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    return "\u00ad".join(token[i : i + 5] for i in range(0, len(token), 5))


def fullwidth_token(rng: random.Random) -> str:
    token = "sk-proj-" + "".join(rng.choice(ALNUM) for _ in range(48))
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in token)


def lowercase_aws_access_key(rng: random.Random) -> str:
    return "akia" + "".join(rng.choice(string.ascii_lowercase + "234567") for _ in range(16))


def policy_password(rng: random.Random) -> str:
    """What a password policy demands: 12-16 characters, four classes."""
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#$%^*@~+?&")
    length = rng.randint(12, 16)
    chars = [rng.choice(c) for c in classes]
    chars += [rng.choice("".join(classes)) for _ in range(length - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)


_WORDS = ("correct", "horse", "battery", "staple", "orange", "window", "river", "planet",
          "silver", "garden", "thunder", "marble", "pencil", "harbor", "violet", "copper")  # fmt: skip


def dictionary_password(rng: random.Random) -> str:
    return rng.choice(_WORDS) + rng.choice(_WORDS)


def passphrase(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(4))


def symbol_soup_password(rng: random.Random) -> str:
    """detect-secrets' keyword tests use secrets made of brackets and symbols."""
    alphabet = string.ascii_lowercase + "{}()[]$#>-_!%"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(18, 30)))


def pem_block(rng: random.Random, label: str) -> str:
    body = "".join(rng.choice(ALNUM + "+/") for _ in range(64 * 3))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    newline = rng.choice(("\n", "\\n"))
    return newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def putty_key(rng: random.Random) -> str:
    body = "".join(rng.choice(ALNUM + "+/") for _ in range(64))
    return (
        "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: rsa-key-20260110\n"
        f"Public-Lines: 1\nAAAAB3NzaC1yc2EAAAABJQAAAQEA\nPrivate-Lines: 1\n{body}\n"
        "Private-MAC: " + "".join(rng.choice("0123456789abcdef") for _ in range(40))
    )


def _b64(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALNUM + "+/") for _ in range(n))


def basic_auth_header(rng: random.Random) -> str:
    pair = f"{rng.choice(_FIRST)}:{policy_password(rng)}"
    return base64.b64encode(pair.encode()).decode()


def urlsafe_token(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(bytes(rng.randrange(256) for _ in range(24))).decode()


def azure_sas_signature(rng: random.Random) -> str:
    sig = base64.b64encode(bytes(rng.randrange(256) for _ in range(32))).decode()
    return sig.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    f.__name__: f
    for f in (
        card_visa, card_mastercard, card_amex, card_discover, ssn_us, phone_us, phone_e164,
        phone_uk, phone_de, phone_fr, ipv4_public, ipv4_private, ipv4_zero_padded, ipv4_octal,
        ipv4_hex_dotted, ipv4_decimal, ipv4_hex, ipv4_with_port, ipv6_full, ipv6_compressed,
        ipv4_mapped_ipv6, email_plain, email_at_dot, email_bracketed, email_fullwidth,
        email_url_encoded, email_html_entity, unc_path, windows_user_path, unix_home_path,
        macos_user_path, hex_encoded_token, base64_encoded_token, zero_width_split_token,
        soft_hyphen_split_token, fullwidth_token, lowercase_aws_access_key, policy_password,
        dictionary_password, passphrase, symbol_soup_password, putty_key, basic_auth_header,
        azure_sas_signature, urlsafe_token,
    )
}  # fmt: skip


def generate(kind: dict[str, Any], rng: random.Random) -> str:
    """One fresh value of ``kind`` (a row of ``kinds.json``)."""
    if kind.get("generator"):
        name, _, arg = kind["generator"].partition(":")
        if name == "pem_block":
            return pem_block(rng, arg)
        return GENERATORS[name](rng)
    return from_regex(kind["format"], rng)


def b64(rng: random.Random, n: int) -> str:
    """Public for contexts that need a filler blob."""
    return _b64(rng, n)


_IDENT = re.compile(r"[^A-Za-z0-9]+")


def env_name(key: str) -> str:
    return _IDENT.sub("_", key).strip("_").upper()
