"""Adversarial inputs for the sanitizer: each is an evasion tried against it, each must fail.

Every case names the secret that must vanish (no 8-character window of it may remain)
and the placeholder that must take its place; the end-to-end test writes hostile
events through ``ingest`` and reads the bytes the store wrote.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ouroboros.capabilities.improve.intake.collectors import ingest
from ouroboros.capabilities.improve.intake.sanitizer import Redactions, Sanitizer
from ouroboros.capabilities.improve.intake.store import TelemetryStore

GHP = "ghp_R7bX2qLk9VwZ4nTs8MfYc3Hd6Jp1Ga5Ue0Qo"
AKIA = "AKIAZ7QX4LRM2VN5TB3W"
PW = "Tr0ub4dor&3x!"
SANITIZER = Sanitizer()
_PLACEHOLDER = re.compile(r"<[a-z]+(?::[a-z0-9\-]+)?>")


def _windows(secret: str) -> set[str]:
    return {secret[i : i + 8] for i in range(max(1, len(secret) - 7))}


def assert_gone(text: str, secret: str, placeholder: str) -> str:
    out = SANITIZER.text(text)
    visible = _PLACEHOLDER.sub(" ", out)
    assert not [w for w in _windows(secret) if w in visible], out
    assert placeholder in out, out
    return out


UNICODE_TRICKS = [
    ("zero-width space", "\u200b".join(GHP[i : i + 4] for i in range(0, 40, 4))),
    ("zero-width joiner", "\u200d".join(GHP)),
    ("word joiner", GHP[:10] + "\u2060" + GHP[10:]),
    ("byte-order mark", GHP[:5] + "\ufeff" + GHP[5:]),
    ("soft hyphen", "\u00ad".join(GHP[i : i + 3] for i in range(0, 40, 3))),
    ("bidi override", "\u202e" + GHP + "\u202c"),
    ("tag characters", GHP[:8] + "\U000e0067\U000e0068" + GHP[8:]),
    ("combining overlay", "".join(c + "\u0336" for c in GHP)),
    ("full-width letters", "".join(chr(ord(c) + 0xFEE0) for c in GHP)),
    ("ANSI colour codes", "\x1b[31m" + GHP[:12] + "\x1b[0m" + GHP[12:]),
    ("C0 control characters", GHP[:6] + "\x00\x07" + GHP[6:]),
]


@pytest.mark.parametrize(("trick", "text"), UNICODE_TRICKS, ids=[t for t, _ in UNICODE_TRICKS])
def test_unicode_tricks_do_not_hide_a_token(trick: str, text: str) -> None:
    assert_gone(f"auth failed with {text} (retry 2)", GHP, "<secret:github-pat>")


@pytest.mark.parametrize(
    "text",
    [
        f"p\u0430ssword={PW}",  # Cyrillic a in the key
        f"t\u03bfken: {PW}",  # Greek omicron
        f"PASSWORD\u00a0=\u00a0{PW}",  # no-break spaces around the separator
        f"\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44={PW}",  # full-width key
        f"pass\u200bword={PW}",  # zero-width space inside the key
    ],
)
def test_disguised_key_names_are_still_key_names(text: str) -> None:
    assert_gone(text, PW, "<secret:")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (GHP.encode().hex(), "<secret:github-pat>"),
        (GHP.encode().hex().upper(), "<secret:github-pat>"),
        (base64.b64encode(GHP.encode()).decode(), "<secret:github-pat>"),
        (base64.urlsafe_b64encode(AKIA.encode()).decode(), "<secret:aws-access-key>"),
        (base64.b64encode(f"admin:{PW}".encode()).decode(), "<secret:basic-auth>"),
        (AKIA.lower(), "<secret:aws-access-key>"),
        ("ghp%5F" + GHP[4:], "<token>"),
    ],
)
def test_encoded_and_case_folded_tokens(text: str, label: str) -> None:
    assert_gone(f"value {text} rejected", text, label)


@pytest.mark.parametrize(
    "template",
    [
        "pw={}", "PW: {}", "db_pass => '{}'", 'dbPass := "{}"', "DB-PASS {}", "--db-pass={}",
        "--db-pass {}", "<dbPass>{}</dbPass>", '"db.pass": "{}"', 'db_pass[0] = "{}"',
        "password is {}", "the passwd was {}", "MYSQL_PWD={} mysql", "secret({!r})",
        "{{\\\"api_key\\\": \\\"{}\\\"}}", "X-Api-Key: {}", "Cookie: sessionid={}; lang=en",
        'if ("{}" == password)', "passphrase: '{}'", "auth_token:{}", "?access_token={}&x=1",
    ],
)  # fmt: skip
def test_a_key_name_in_any_separator_style_takes_its_value(template: str) -> None:
    assert_gone("config: " + template.format(PW), PW, "<secret:")


@pytest.mark.parametrize(
    "command",
    [
        "mysql -uroot -p{} -h db app", "mysql --password={} app", "curl -u deploy:{} https://x.io",
        "curl --user 'deploy:{}' https://x.io", "curl -udeploy:{} https://x.io",
        "sshpass -p {} ssh deploy@host", "redis-cli -h cache -a {} ping",
        "docker login -u me -p {} registry.example.com", "PGPASSWORD={} psql -h db",
        "wget --password={} https://x.io/f", "git clone https://me:{}@github.com/acme/app",
        "keytool -storepass {} -list",
    ],
)  # fmt: skip
def test_passwords_on_command_lines(command: str) -> None:
    assert_gone("$ " + command.format(PW), PW, "<secret:")


@pytest.mark.parametrize(
    ("command", "secret"),
    [("sshpass -p hunter ssh x", "hunter"), ("redis-cli -a swordfish ping", "swordfish"),
     ("mysql -phunter2 app", "hunter2")],
)  # fmt: skip
def test_command_line_passwords_go_even_when_they_are_words(command: str, secret: str) -> None:
    out = SANITIZER.text(command)
    assert secret not in out and "<secret:password>" in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"https://user:{PW}@example.com/x", PW),
        (f"//user:{PW}@example.com/x", PW),
        (f"https://example.com/cb#access_token={GHP}&state=1", GHP),
        (f"https://example.com/x?X-Amz-Signature={'ab12' * 16}", "ab12" * 16),
        (f"https://good.example\\@evil.example/{GHP}", GHP),
        (f"https://acct.blob.core.windows.net/c?sv=2021&sig={'Zm9v' * 11}%3D", "Zm9v" * 11),
        (f"https://hooks.slack.com/services/T0123ABCD/B0456EFGH/{GHP[4:28]}", GHP[4:28]),
    ],
)
def test_urls_keep_no_credentials_and_no_tokens(text: str, secret: str) -> None:
    out = SANITIZER.text(f"calling {text} failed")
    assert not [w for w in _windows(secret) if w in out], out


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("3232235777", "<n>"), ("http://3232235777/", "<ip:private>"), ("0xC0A80001", "<hex>"),
        ("0300.0250.0001.0001", "<ip"), ("0xc0.0xa8.0x01.0x01", "<ip"), ("192.168.001.001", "<ip"),
        ("fe80::1%eth0", "<ip:private>"), ("[2001:db8::7]:443", "<ip"), ("::ffff:8.8.8.8", "<ip>"),
        ("http://[::1]:8080/", "<ip:loopback>"), ("http://127.1/", "<ip:loopback>"),
    ],
)  # fmt: skip
def test_ip_addresses_in_every_notation(text: str, placeholder: str) -> None:
    digits = re.sub(r"\D", "", text)
    out = SANITIZER.text(f"connect {text} refused")
    assert placeholder in out and (len(digits) < 4 or digits not in re.sub(r"\D", "", out)), out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\tZ (_=2a00:e47a::d247: X9]", "\tZ (_=<ip>: X9]"),  # found by the hunt
        ("host=2a00:e47a::d247: refused", "host=<ip>: refused"),
        ("peer 2a00:e47a::d247: gone", "peer <ip>: gone"),
        ("from fe80::1: to", "from <ip:private>: to"),
        ("nic=de:ad:be:ef:00:01: up", "nic=<mac>: up"),
    ],
)  # fmt: skip
def test_an_address_followed_by_a_colon_is_still_an_address(text: str, expected: str) -> None:
    """The IPv6 pattern took the colon after an address, which then parsed as no address:
    after ``x=`` its groups were read as words and all but the first kept (``e47a::d247``)."""
    out = SANITIZER.text(text)
    assert out == expected
    assert SANITIZER.text(out) == out


@pytest.mark.parametrize(
    "lead", ["=", ":", ":=", "==", "+", "!", "#", "%", "&", "*", "?", "|", "@", "$", "=@"]
)
@pytest.mark.parametrize(
    "path",
    [
        "/Users/bob/Library/Keychains/login.keychain-db", "~/bob/.aws/credentials",
        "./bob/.ssh/id_rsa", "../bob/.netrc", r"\\fileserver\bob$\keys.txt",
    ],
)  # fmt: skip
def test_a_path_glued_to_punctuation_with_no_key_is_still_a_path(lead: str, path: str) -> None:
    """``=/Users/bob/…`` (hypothesis found it), ``curl -d @/home/…``: the punctuation is
    not a name, and the path after it is cut like any other."""
    for text in (lead + path, f"x {lead}{path} y", f"-d {lead}{path}\n"):
        out = SANITIZER.text(text)
        assert "bob" not in out and "<path>" in out, (text, out)
        assert out.startswith(text[: text.index(lead) + len(lead)]), (text, out)
        assert SANITIZER.text(out) == out


@pytest.mark.parametrize(
    "text",
    [
        r"\\fileserver01\finance$\payroll.xlsx", r"C:\Users\alice\AppData\token.json",
        "C:/Users/alice/Desktop/keys.txt", "/home/alice/.ssh/id_ed25519",
        "/Users/bob/Library/Keychains/login.keychain-db", "~/.aws/credentials",
        "file:///home/alice/secrets.env",
    ],
)  # fmt: skip
def test_paths_that_name_people_or_keys(text: str) -> None:
    out = SANITIZER.text(f"open {text}: permission denied")
    assert "alice" not in out and "bob" not in out and "aws" not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "alice.smith@example.com", "alice at example dot com", "alice AT example DOT com",
        "alice [at] example [dot] com", "alice(at)example(dot)com", "alice{at}example{dot}com",
        "alice<at>example<dot>com", "alice[@]example.com", "alice\uff20example\uff0ecom",
        "alice%40example.com", "alice&#64;example.com", "alice&#x40;example.com",
        "alice&commat;example.com",
    ],
)  # fmt: skip
def test_obfuscated_email_addresses(text: str) -> None:
    out = SANITIZER.text(f"contact {text} for access")
    assert "alice" not in out and "<email>" in out, out


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("X=PASSWORD=hgarcia&#64;example.org", "hgarcia&#64;example.org"),
        ("aAp@s4:A=PASSWORD=hgarcia&#64;example.org)s#", "hgarcia&#64;example.org"),
        ("0r=PASSWORD=hiro.garcia&commat;example.org; 6:OSS=", "hiro.garcia&commat;example.org"),
        ("rA-D\t/=PASSWORD=grace.garcia&commat;example.org, W=66_d", "grace.garcia&commat;example.org"),
        ("x /tmp/a=hgarcia&#x40;mail.example.net", "hgarcia&#x40;mail.example.net"),
        (".PAwSro6=PASSWORD=dmitri20 at corp dot example dot co dot uk'",
         "dmitri20 at corp dot example dot co dot uk"),
        ("r40w0Aw_p=PASSWORD=hiro26 at corp dot example dot co dot uk\tdS=;4",
         "hiro26 at corp dot example dot co dot uk"),
        ("/=PASSWORD=jonas56 at corp dot example dot co dot uk, :rW",
         "jonas56 at corp dot example dot co dot uk"),
        ("\n@/a.=btanaka[at]example[dot]com):o4", "btanaka[at]example[dot]com"),
        ("RRSS\n/PSpW=iokafor <at> example <dot> com'sa", "iokafor <at> example <dot> com"),
        (";a:pW=--=PASSWORD=grossi at corp dot example dot co dot uk; s",
         "grossi at corp dot example dot co dot uk"),
        ("pw6=PASSWORD=ckowalski [at] corp [dot] example [dot] co [dot] uk\t.", "ckowalski [at] corp"),
    ],
)  # fmt: skip
def test_an_obfuscated_address_glued_to_a_key_goes_whole(text: str, address: str) -> None:
    """Found by the property test: the ``;`` ending ``&#64;`` split the address between
    two tokens (and a blob-looking name before ``PASSWORD=`` took a spelt-out one's local
    part alone), so the domain was kept: ``<token>;example.org``."""
    out = SANITIZER.text(text)
    visible = _PLACEHOLDER.sub(" ", out)
    assert not [w for w in _windows(address) if w in visible], out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('P0@&=administrator_login_password = "tm_nx4=2"\r\n', "tm_nx4=2"),
        ('6A=aRa=db_pass = "battery thunder correct marble" &-w', "battery thunder correct marble"),
        ("#;o6A=MYSQL_PWD = h!(kf_]_qigzhos{t!'.p", "h!(kf_]_qigzhos{t!'.p"),
        (':#s=administrator_login_password = "un=_=ykir""__spAwO', "un=_=ykir"),
        ("_Ww0o:RawAA=sshpass -p 'horseviolet' ssh deploy@build.example.com", "horseviolet"),
        ("wr6rRD=redis-cli -h cache.internal -a stapleviolet ping", "stapleviolet"),
        # a path took the name (later hunt): "<path> = value"
        ("r;/=api_key = !ki)}oim%)__vkbzaf(b)[{jp[b_\n.;s;/p0do", "!ki)}oim%)__vkbzaf(b)[{jp[b_"),
        ("C:\\x=password = summer2tide ok", "summer2tide"),
    ],
)  # fmt: skip
def test_a_key_or_command_glued_after_a_blob_still_takes_its_value(text: str, secret: str) -> None:
    """Found by a hunt beside the property test: ``x0=db_pass = "…"`` read as one blob
    (``<token>``), or ``/=api_key`` as a path, left the value after the key in the clear."""
    out = SANITIZER.text(text)
    visible = _PLACEHOLDER.sub(" ", out)
    assert not [w for w in _windows(secret) if w in visible], out


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ('client = Client(nytimes_access_token="vkpkg_i=hx_shsyiao-9-lse_zowbop9")\n'
         "ValueError: rejected vkpkg_i=hx_shsyiao-9-lse_zowbop9: bad",
         "vkpkg_i=hx_shsyiao-9-lse_zowbop9",
         'client = Client(nytimes_access_token="<secret:token>")\n'
         "ValueError: rejected <secret:token>: bad"),
        # glued to the text after it, and holding a password key of its own ("-pw=")
        ('Client(gocardless_api_token="live_vukb-pw=8kpyp6x1p9wy99amj33-xca3xcak0=4b")\n'
         'ValueError: rejected live_vukb-pw=8kpyp6x1p9wy99amj33-xca3xcak0=4b"rOW=',
         "live_vukb-pw=8kpyp6x1p9wy99amj33-xca3xcak0=4b",
         'Client(gocardless_api_token="<secret:token>")\nValueError: rejected <secret:token>"rOW='),
        ('db_pass="correct horse battery" auth failed for correct horse battery',
         "correct horse battery",
         'db_pass="<secret:password>" auth failed for <secret:password>'),
        ("auth failed for summer: password: summer", "summer",
         "auth failed for <secret:password>: password: <secret:password>"),  # echo first
        ('Client(password="09 05 65 97 53")\nValueError: rejected 09 05 65 97 53 6s',
         "09 05 65 97 53", 'Client(password="<n>")\nValueError: rejected <n> 6s'),
        # a value that is also a placeholder's word: the placeholders stay whole
        ("password=secret; retried secret", "secret",
         "password=<secret:password>; retried <secret:password>"),
    ],
)  # fmt: skip
def test_a_value_replaced_after_its_name_goes_wherever_else_it_stands(
        text: str, secret: str, expected: str) -> None:
    """Found by a hunt beside the property test: a traceback names the secret's key in
    the call and then echoes the bare value ("ValueError: rejected <value>"), which had
    no name before it (a passphrase of words, a token holding "pw=" that was then cut in
    pieces, a phone number glued to "6s") and was kept. Every occurrence of a value
    replaced after a secret's name is replaced; secrets counted once each; a fixed point."""
    out, counts = SANITIZER.text_with_counts(text)
    assert out == expected
    assert secret not in _PLACEHOLDER.sub(" ", out)
    assert sum(n for _, n in counts) == expected.count("<secret:")  # <n> is not counted
    assert SANITIZER.text(out) == out


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("4111 1111 1111 1111", "<card>"), ("4111-1111-1111-1111", "<card>"),
        ("4111111111111111", "<card>"), ("3782 822463 10005", "<card>"),
        ("4111 1111 1111 1112", "<n>"),  # not Luhn-valid: still a long number
        ("123-45-6789", "<ssn>"), ("123 45 6789", "<ssn>"), ("(555) 123-4567", "<phone>"),
        ("+1 555 123 4567", "<phone>"), ("+447911123456", "<phone>"), ("01 23 45 67 89", "<phone>"),
        ("555.123.4567", "<phone>"),
    ],
)  # fmt: skip
def test_cards_ssns_and_phone_numbers(text: str, placeholder: str) -> None:
    out = SANITIZER.text(f"customer {text} called")
    assert out == f"customer {placeholder} called"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 08 30 64 74 05 4aaa", "call <phone> 4aaa"),
        ("rejected 09 05 65 97 53 6s =", "rejected <phone> 6s ="),
        ("PASSWORD=08 30 64 74 05 4aaa", "PASSWORD=<phone> 4aaa"),
        ("dial +33 6 12 34 56 78abc", "dial <phone> 78abc"),
        ("acct 12 345 678 9ab", "acct <n> 9ab"),
        # a later hunt: the chain ran on into ")0.P", a separator then a letter
        (".a&6da]PASSWORD=+1 893 752 4718)0.P:&&ASw", ".a&6da]PASSWORD=<secret:password>"),
        ("dial +1 893 752 4718)0.P now", "dial <phone>)0.P now"),
        # the hunt after that: a group after ")" ran into a letter, and the whole chain
        # was kept (5 leaks in 60,000 draws, 4 of them this shape)
        ("#\"_, 02 32 41 73 12)7a# _", "#\"_, <phone>)7a# _"),
        ("see 02 67 48 33 92)25X", "see <phone>)25X"),
        ("PASSWORD=08 01 98 96 89).65a\n[[7X:", "PASSWORD=<secret:password>\n[[7X:"),
        ("(555)123-4567 ok", "<phone> ok"),
        ("ip 10.0.0.1x", "ip <token>"),  # no ")": a dotted chain glued to a word stays one
    ],
)  # fmt: skip
def test_a_number_then_a_word_starting_with_a_digit_is_still_a_number(
        text: str, expected: str) -> None:
    """Found by the hunt: a phone number's chain ran on into ``4aaa``, which made the
    whole chain no number at all, and every group was kept (``call 08 30 64 74 05 4aaa``
    unchanged). A group after a space ends where its word ends, and no group leads into a
    separator and a letter."""
    out = SANITIZER.text(text)
    assert out == expected
    assert SANITIZER.text(out) == out


@pytest.mark.parametrize(
    "block",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx9Zq\nR7bX2qLk9VwZ4nTs\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B",  # cut off: no END line
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nAAAAIB9sX2Hk",
    ],
)
def test_private_key_blocks_whole_or_truncated(block: str) -> None:
    out = SANITIZER.text(f"loaded key:\n{block}\nfrom env")
    assert "<secret:private-key>" in out
    assert not any(piece in out for piece in ("MIIE", "b3Blbn", "AAAAIB9s", "R7bX2q"))


@pytest.mark.parametrize(
    ("text", "smuggled"),
    [
        ("pw=<n>hunter2", "hunter2"),
        ("token: <secret:password>Tr0ub4dor", "Tr0ub4dor"),
        (f"<secret:{GHP}>", GHP),
        ("<ip:private>AKIAZ7QX4LRM2VN5TB3W", AKIA),
    ],
)
def test_forged_placeholders_do_not_protect_what_follows(text: str, smuggled: str) -> None:
    out = SANITIZER.text(text)
    assert smuggled not in out, out


def test_already_sanitized_text_is_left_alone() -> None:
    text = (
        "GET https://api.example.com from <ip:private>:5432 as <email>: "
        "pw=<secret:password> card <card> at <time> (request <n>)"
    )
    assert SANITIZER.text(text) == text


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "text",
    ["a." * 2048, "1." * 2048, "key." * 1024, "a.b@" * 1024, "::1 " * 1024, "a-" * 2048,
     "password=" * 500, "-----BEGIN " * 400, '"' * 4000, "x" * 4096, "0" * 4096, "(1) " * 1000,
     "a [at] " * 600, "\u200b" * 4096, "https://" * 500],
)  # fmt: skip
def test_pathological_input_ends(text: str) -> None:
    started = time.monotonic()
    SANITIZER.text(text)
    assert time.monotonic() - started < 60  # generous: the budget is in bench/, not here


def test_hostile_events_leave_nothing_in_the_store(tmp_path: Path) -> None:
    """End to end: secrets in every field of every event, through ingest, onto disk."""
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    store = TelemetryStore(tmp_path / "ws", clock=lambda: now)
    secrets = [GHP, AKIA, PW, "4111111111111111", "alice@example.com"]
    messages = [text for _, text in UNICODE_TRICKS] + [
        f"mysql -uroot -p{PW} failed", f"curl -u ops:{PW} https://x.io",
        f"db_pass: {PW}", "card 4111 1111 1111 1111 of alice@example.com", AKIA.lower(),
    ]  # fmt: skip
    lines = []
    for i, message in enumerate(messages):
        lines.append(json.dumps({
            "timestamp": "2026-01-10T11:00:00Z", "event_type": "tool_call", "tool": GHP[:30],
            "agent": AKIA, "success": False, "error_code": f"E_{AKIA}", "error_message": message,
            "session_id": GHP + str(i), "prompt": f"user said {PW}",
        }))  # fmt: skip
    lines.append(json.dumps({"timestamp": "2026-01-10T11:00:00Z", "event_type": "task_failure",
                             "task_name": "sync", "error_category": "AUTH",
                             "error_message": f"token={GHP}"}))  # fmt: skip
    source = tmp_path / "hostile.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = ingest([source], store)
    assert report.stored == len(lines) and report.malformed_count == 0
    stored = b"".join(p.read_bytes() for p in (tmp_path / "ws").rglob("*") if p.is_file())
    assert stored, "nothing was written at all"
    text = stored.decode("utf-8")
    for secret in secrets:
        assert not [w for w in _windows(secret) if w in text], secret
    assert "\u200b" not in text and "\x1b" not in text
    assert report.redactions["secret"] >= len(messages)


@pytest.mark.parametrize(
    "name", ["b64tool", "sha256sum", "md5sum", "gpt4o-mini", "a1b2c3", "build-3f2a1b9c7d",
             "mcp:fs/read_file", "E11000", "job 2026-01-10"],
)  # fmt: skip
def test_names_that_only_look_generated_are_kept(name: str) -> None:
    """A tool, agent or task name (or an error code) is what analysis groups by; the
    default-deny guess from its shape alone does not apply to it."""
    assert SANITIZER.name(name) == name
    for field in ("tool", "agent", "task_name", "error_code"):
        if field == "error_code" and " " in name:
            continue
        assert SANITIZER.event({field: name})[field] == name


@pytest.mark.parametrize(
    ("name", "secret", "placeholder"),
    [
        (AKIA, AKIA, "<secret:aws-access-key>"), (f"E_{AKIA}", AKIA, "<secret:aws-access-key>"),
        (f"deploy {GHP}", GHP, "<secret:github-pat>"), (GHP[:30], GHP[:30], "<secret:"),
        ("xK9vQ2mZ7pL4wR8nT3bYc5", "xK9vQ2mZ7pL4wR8nT3bYc5", "<secret:high-entropy>"),
        ("ops@example.com", "ops@example.com", "<email>"),
        ("/home/alice/bin/sync", "alice", "<path>"), ("call 4111111111111111", "41111111", "<card>"),
        ("sync 10.1.2.3", "10.1.2.3", "<ip:private>"),
    ],
)  # fmt: skip
def test_a_secret_in_a_name_field_is_still_redacted(name: str, secret: str, placeholder: str) -> None:
    redactions = Redactions()
    for field in ("tool", "agent", "task_name", "error_code"):
        out = SANITIZER.event({field: name}, redactions)[field]
        assert secret not in out and placeholder in out, (field, out)
    assert sum(redactions.counts.values()) >= 4


def test_free_text_in_a_name_field_is_sanitized_as_text() -> None:
    """Only name-shaped values are names: anything else gets the full default-deny."""
    text = f"Tr0ub4dor&3x! and {GHP[:12]}"
    assert SANITIZER.name(text) == SANITIZER.text(text)
    assert "Tr0ub4dor" not in SANITIZER.name(text)
