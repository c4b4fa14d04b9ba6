"""The labelled secrets corpus: kinds, secrets, the contexts they are logged in, harmless text.

Data lives in ``tests/security/data/secrets/`` (see its README for provenance and
licences): ``kinds.json`` (one row per kind: its format, where the format comes from,
the placeholder label expected), ``corpus.jsonl`` (the secrets: generated values and
public test strings) and ``harmless.jsonl`` (real-looking text that must survive).

Rebuild the data (needs a checkout of gitleaks for its rule set)::

    python -m tests.security.secrets_corpus --gitleaks path/to/gitleaks/config/gitleaks.toml
"""

from __future__ import annotations

import argparse
import http
import json
import os
import random
import re
import sqlite3
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ouroboros.capabilities.improve.intake.secret_rules import RULE_LABELS

try:  # imported as a package module by pytest, or run as a script
    from . import secretgen as gen
except ImportError:  # pragma: no cover
    import secretgen as gen  # type: ignore[no-redef]

DATA = Path(__file__).parent / "data" / "secrets"
GITLEAKS = "gitleaks/gitleaks config/gitleaks.toml @ b58d3f10 (MIT)"
DETECT_SECRETS = "Yelp/detect-secrets @ 5e141933 (Apache-2.0)"
OURS = "this project (format from the issuer's documentation)"
PER_KIND = 3  # generated values per kind, besides public test strings


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str  # as it appears bare
    secret: str  # the part that must never survive
    source: str


# -- kinds written by hand: the issue's cases, PII, obfuscations, detect-secrets' formats ----

_PW_KEYS = ("pw", "pass", "passwd", "password", "db_pass", "DB_PASSWORD", "dbPass", "db-pass",
            "MYSQL_PWD", "secret", "client_secret", "token", "auth_token", "apikey", "api_key",
            "API-KEY", "X-Api-Key", "access_key", "PGPASSWORD", "admin.password")  # fmt: skip

# (kind, generator, template for the bare text, label prefix expected, shape)
# shape: value = the bare text is the secret itself; assignment = the bare text names it.
_MANUAL: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("keyed-password-equals", "policy_password", "{key}={value}", "secret:", "assignment"),
    ("keyed-password-colon", "policy_password", "{key}: {value}", "secret:", "assignment"),
    ("keyed-password-json", "policy_password", '"{key}": "{value}"', "secret:", "assignment"),
    ("keyed-password-arrow", "policy_password", "'{key}' => '{value}'", "secret:", "assignment"),
    ("keyed-password-xml", "policy_password", "<{key}>{value}</{key}>", "secret:", "assignment"),
    ("keyed-password-flag", "policy_password", "--{key} {value}", "secret:", "assignment"),
    ("keyed-password-flag-equals", "policy_password", "--{key}={value}", "secret:", "assignment"),
    ("keyed-password-is", "policy_password", "the {key} is {value}", "secret:", "assignment"),
    ("keyed-password-space", "policy_password", "{key} {value}", "secret:", "assignment"),
    ("keyed-password-go", "policy_password", '{key} := "{value}"', "secret:", "assignment"),
    ("keyed-password-compare", "policy_password", 'if ("{value}" == {key}) {{', "secret:", "assignment"),
    ("keyed-password-cpp", "policy_password", 'std::string {key}("{value}");', "secret:", "assignment"),
    ("keyed-password-yaml-quoted", "policy_password", "{key}: '{value}'", "secret:", "assignment"),
    ("keyed-password-nuget", "policy_password", '<add key="ClearTextPassword" value="{value}" />', "secret:", "assignment"),
    ("keyed-password-sqlserver", "policy_password", "Server=tcp:db.example.com,1433;Database=app;User ID=app;Password={value};", "secret:", "assignment"),
    ("keyed-dictionary-password", "dictionary_password", "{key}={value}", "secret:", "assignment"),
    ("keyed-passphrase-quoted", "passphrase", '{key} = "{value}"', "secret:", "assignment"),
    ("keyed-symbol-soup-secret", "symbol_soup_password", "{key} = {value}", "secret:", "assignment"),
    ("confusable-key-password", "policy_password", "p\u0430ssword={value}", "secret:", "assignment"),
    ("mysql-cli-password", "policy_password", "mysql -u root -p{value} -h db.internal app", "secret:", "assignment"),
    ("curl-user-password", "policy_password", "curl -u deploy:{value} https://api.example.com/v1/me", "secret:", "assignment"),
    ("curl-user-long-flag", "policy_password", "curl --user 'ops:{value}' https://registry.example.com", "secret:", "assignment"),
    ("sshpass-password", "dictionary_password", "sshpass -p '{value}' ssh deploy@build.example.com", "secret:", "assignment"),
    ("redis-cli-password", "dictionary_password", "redis-cli -h cache.internal -a {value} ping", "secret:", "assignment"),
    ("url-userinfo-password", "policy_password", "postgresql://app:{value}@db.example.com:5432/orders", None, "assignment"),
    ("url-userinfo-token", "hex_encoded_token", "https://x-access-token:{value}@github.com/acme/app.git", None, "assignment"),
    ("url-query-token", "urlsafe_token", "https://api.example.com/v1/export?access_token={value}&format=csv", None, "assignment"),
    ("azure-sas-signature", "azure_sas_signature", "https://acct.blob.core.windows.net/c/b.txt?sv=2021-08-06&sp=r&sig={value}", None, "assignment"),
    ("basic-auth-header", "basic_auth_header", "Authorization: Basic {value}", "secret:", "assignment"),
    ("cookie-session", "policy_password", "Cookie: sessionid={value}; theme=dark", "secret:", "assignment"),
    ("hex-encoded-token", "hex_encoded_token", "{value}", "secret:github-pat", "value"),
    ("base64-encoded-token", "base64_encoded_token", "{value}", "secret:github-pat", "value"),
    ("zero-width-split-token", "zero_width_split_token", "{value}", "secret:github-pat", "value"),
    ("soft-hyphen-split-token", "soft_hyphen_split_token", "{value}", "secret:aws-access-key", "value"),
    ("fullwidth-token", "fullwidth_token", "{value}", "secret:openai-api-key", "value"),
    ("lowercase-aws-access-key", "lowercase_aws_access_key", "{value}", "secret:aws-access-key", "value"),
    ("ipv4-public", "ipv4_public", "{value}", "ip", "value"),
    ("ipv4-private", "ipv4_private", "{value}", "ip", "value"),
    ("ipv4-zero-padded", "ipv4_zero_padded", "{value}", "ip", "value"),
    ("ipv4-octal", "ipv4_octal", "{value}", "ip", "value"),
    ("ipv4-hex-dotted", "ipv4_hex_dotted", "{value}", "ip", "value"),
    ("ipv4-decimal", "ipv4_decimal", "{value}", None, "value"),
    ("ipv4-hex", "ipv4_hex", "{value}", None, "value"),
    ("ipv4-with-port", "ipv4_with_port", "{value}", "ip", "value"),
    ("ipv4-decimal-url", "ipv4_decimal", "http://{value}/admin", "ip", "assignment"),
    ("ipv6-full", "ipv6_full", "{value}", "ip", "value"),
    ("ipv6-compressed", "ipv6_compressed", "{value}", "ip", "value"),
    ("ipv4-mapped-ipv6", "ipv4_mapped_ipv6", "{value}", "ip", "value"),
    ("unc-path", "unc_path", "{value}", "path", "value"),
    ("windows-user-path", "windows_user_path", "{value}", "path", "value"),
    ("unix-home-path", "unix_home_path", "{value}", "path", "value"),
    ("macos-user-path", "macos_user_path", "{value}", "path", "value"),
    ("email", "email_plain", "{value}", "email", "value"),
    ("email-at-dot", "email_at_dot", "{value}", "email", "value"),
    ("email-bracketed", "email_bracketed", "{value}", "email", "value"),
    ("email-fullwidth", "email_fullwidth", "{value}", "email", "value"),
    ("email-url-encoded", "email_url_encoded", "{value}", "email", "value"),
    ("email-html-entity", "email_html_entity", "{value}", "email", "value"),
    ("card-visa", "card_visa", "{value}", "card", "value"),
    ("card-mastercard", "card_mastercard", "{value}", "card", "value"),
    ("card-amex", "card_amex", "{value}", "card", "value"),
    ("card-discover", "card_discover", "{value}", "card", "value"),
    ("ssn-us", "ssn_us", "{value}", "ssn", "value"),
    ("phone-us", "phone_us", "{value}", "phone", "value"),
    ("phone-e164", "phone_e164", "{value}", "phone", "value"),
    ("phone-uk", "phone_uk", "{value}", "phone", "value"),
    ("phone-de", "phone_de", "{value}", "phone", "value"),
    ("phone-fr", "phone_fr", "{value}", "phone", "value"),
    ("private-key-rsa", "pem_block:RSA PRIVATE KEY", "{value}", "secret:private-key", "value"),
    ("private-key-ec", "pem_block:EC PRIVATE KEY", "{value}", "secret:private-key", "value"),
    ("private-key-pkcs8", "pem_block:PRIVATE KEY", "{value}", "secret:private-key", "value"),
    ("private-key-encrypted", "pem_block:ENCRYPTED PRIVATE KEY", "{value}", "secret:private-key", "value"),
    ("private-key-openssh", "pem_block:OPENSSH PRIVATE KEY", "{value}", "secret:private-key", "value"),
    ("private-key-pgp", "pem_block:PGP PRIVATE KEY BLOCK", "{value}", "secret:private-key", "value"),
    ("putty-private-key", "putty_key", "{value}", "secret:private-key", "value"),
)  # fmt: skip

# Formats from detect-secrets' plugins (denylists and test data) that gitleaks has no rule for.
_DETECT_SECRETS_FORMATS: tuple[tuple[str, str, str, str | None], ...] = (
    ("artifactory-akc", r"AKC[a-zA-Z0-9]{10,24}", "artifactory_token", None),
    ("artifactory-ap", r"AP[\dABCDEF][a-zA-Z0-9]{8,24}", "artifactory_password", None),
    ("twilio-account-sid", r"AC[a-z0-9]{32}", "twilio_sid", None),
    ("ibm-cos-hmac-secret", r"[a-f0-9]{48}", "cos_hmac_secret_access_key", None),
    ("ibm-cloud-iam-key", r"[a-zA-Z0-9_\-]{44}", "ibm_cloud_iam_key", None),
    ("softlayer-api-key", r"[a-z0-9]{64}", "softlayer_api_key", None),
    ("cloudant-password", r"[0-9a-f]{64}", "cloudant_password", None),
    ("aws-secret-access-key", r"[A-Za-z0-9/+]{40}", "aws_secret_access_key", None),
    ("azure-storage-account-key", r"[a-zA-Z0-9+/]{86}==", "AccountKey", None),
    ("npm-authtoken-uuid", r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", "npm_auth_token", None),
    ("base64-high-entropy", r"[A-Za-z0-9+/]{40,60}={0,2}", "payload", None),
    ("hex-high-entropy", r"[a-f0-9]{40,64}", "digest_secret", None),
    ("square-oauth-secret", r"sq0csp-[0-9A-Za-z\-_]{43}", "square_oauth_secret", "secret:square-oauth-secret"),
)  # fmt: skip

# Public test strings from the scanners' own tests: (kind, text, secret, source).
_PUBLIC: tuple[tuple[str, str, str, str], ...] = (
    ("aws-access-token", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", f"{DETECT_SECRETS} test_data/each_secret.py"),
    ("aws-secret-access-key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", f"{DETECT_SECRETS} test_data/each_secret.py"),
    ("hex-high-entropy", "8b1118b376c313ed420e5133ba91307817ed52c2", "8b1118b376c313ed420e5133ba91307817ed52c2", f"{DETECT_SECRETS} test_data/each_secret.py"),
    ("base64-high-entropy", "c2VjcmV0IG1lc3NhZ2Ugc28geW91J2xsIG5ldmVyIGd1ZXNzIG15IHBhc3N3b3Jk", "c2VjcmV0IG1lc3NhZ2Ugc28geW91J2xsIG5ldmVyIGd1ZXNzIG15IHBhc3N3b3Jk", f"{DETECT_SECRETS} test_data/each_secret.py"),
    ("url-userinfo-password", "http://username:whywouldyouusehttpforpasswords@example.com", "whywouldyouusehttpforpasswords", f"{DETECT_SECRETS} test_data/each_secret.py"),
    ("azure-storage-account-key", "AccountKey=lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==", "lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==", f"{DETECT_SECRETS} tests/plugins/azure_storage_key_test.py"),
    ("ibm-cos-hmac-secret", 'COS_HMAC_SECRET_ACCESS_KEY = "1234567890abcdef1234567890abcdef1234567890abcdef"', "1234567890abcdef1234567890abcdef1234567890abcdef", f"{DETECT_SECRETS} tests/plugins/ibm_cos_hmac_test.py"),
    ("ibm-cloud-iam-key", "ibm-cloud_api_key: abcd1234abcd1234abcd1234ABCD1234ABCD1234--__", "abcd1234abcd1234abcd1234ABCD1234ABCD1234--__", f"{DETECT_SECRETS} tests/plugins/ibm_cloud_iam_test.py"),
    ("softlayer-api-key", '--softlayer-api-key "abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234"', "abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234abcd1234", f"{DETECT_SECRETS} tests/plugins/softlayer_test.py"),
    ("npm-authtoken-uuid", "//registry.npmjs.org/:_authToken=743b294a-cd03-11ec-9d64-0242ac120002", "743b294a-cd03-11ec-9d64-0242ac120002", f"{DETECT_SECRETS} tests/plugins/npm_test.py"),
    ("keyed-symbol-soup-secret", "apikey = m{{h}o)p${e]nob(ody[finds>-_$#thisone}}", "m{{h}o)p${e]nob(ody[finds>-_$#thisone}}", f"{DETECT_SECRETS} tests/plugins/keyword_test.py"),
    ("keyed-passphrase-quoted", 'password = "value with quotes and spaces"', "value with quotes and spaces", f"{DETECT_SECRETS} tests/plugins/keyword_test.py"),
    ("keyed-password-compare", 'if ("m{{h}o)p${e]nob(ody[finds>-_$#thisone}}" == my_super_password) {', "m{{h}o)p${e]nob(ody[finds>-_$#thisone}}", f"{DETECT_SECRETS} tests/plugins/keyword_test.py"),
    ("keyed-password-cpp", 'std::string secret("m{{h}o)p${e]nob(ody[finds>-_$#thisone}}");', "m{{h}o)p${e]nob(ody[finds>-_$#thisone}}", f"{DETECT_SECRETS} tests/plugins/keyword_test.py"),
    ("curl-user-password", "curl --cacert ca.crt -u elastic:P@ssw0rd$1 https://localhost:9200", "P@ssw0rd$1", f"{GITLEAKS} cmd/generate/config/rules/curl.go"),
    ("curl-user-password", "curl --user roger23@gmail.com:pQ9wTxu4Fg https://www.dropbox.com/cli_link?host_id=abcdefg -v", "pQ9wTxu4Fg", f"{GITLEAKS} cmd/generate/config/rules/curl.go"),
    ("curl-user-long-flag", 'curl -s -v --user "j.smith:dB2yF6@qL9vZm1P#4J" "https://api.contoso.org/user/me"', "dB2yF6@qL9vZm1P#4J", f"{GITLEAKS} cmd/generate/config/rules/curl.go"),
    ("curl-user-long-flag", "curl --user kevin:'pRf7vG2h1L8nQkW9' -iX PATCH -H \"Content-Type: application/json\" -d", "pRf7vG2h1L8nQkW9", f"{GITLEAKS} cmd/generate/config/rules/curl.go"),
    ("curl-user-long-flag", "curl -sw '%{http_code}' -X POST --user  'johns:h0pk1ns~21s' $GItHUB_API_URL/$GIT_COMMIT --data", "h0pk1ns~21s", f"{GITLEAKS} cmd/generate/config/rules/curl.go"),
)  # fmt: skip

# gitleaks rules whose regex is not a value format: handled by hand-written kinds above
# (curl, private keys, generic keywords, nuget) or not a text format at all (pkcs12 files).
_GITLEAKS_SKIP = {
    "pkcs12-file": "matches file paths, not text",
    "generic-api-key": "keyword + any value: the keyed-* kinds",
    "curl-auth-header": "the curl-* and basic-auth-header kinds",
    "curl-auth-user": "the curl-* kinds (with gitleaks' own test strings)",
    "private-key": "the private-key-* kinds",
    "nuget-config-password": "keyed-password-nuget",
    "kubernetes-secret-yaml": "a multi-line YAML document, not a value format",
    "jwt-base64": "base64 of a JWT: its alternatives are header fragments, not a format",
}


# gitleaks rules whose values cannot carry their name bare.
_UNLABELLED = {
    "sourcegraph-access-token": "its format includes bare 40-digit hex, which is just <hex>",
    "facebook-access-token": "its '|' variant is two tokens (a number and a blob) to a log",
}


def _capture_source(pattern: str, wanted: int) -> str | None:
    """The source text of capturing group ``wanted`` (1-based), or None."""
    count, depth, start, i, in_class = 0, 0, -1, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            capturing = pattern[i + 1] != "?" or (
                pattern[i + 1 : i + 3] == "?P" and pattern[i + 3] == "<"
            )
            if start >= 0:
                depth += 1
            elif capturing:
                count += 1
                if count == wanted:
                    start, depth = i, 0
        elif ch == ")" and start >= 0:
            if depth == 0:
                inner = pattern[start + 1 : i]
                return re.sub(r"^\?P<\w+>", "", inner)
            depth -= 1
        i += 1
    return None


def _env_key(rule_id: str) -> str:
    """``adobe-client-secret`` → ``adobe_client_secret``: how such a value is named in config."""
    return rule_id.replace("-", "_")


def gitleaks_kinds(toml_path: Path) -> list[dict[str, Any]]:
    rules = tomllib.loads(toml_path.read_text())["rules"]
    kinds = []
    for rule in rules:
        rid = rule["id"]
        if rid in _GITLEAKS_SKIP or "regex" not in rule:
            continue
        pattern = gen.go_regex_to_python(rule["regex"])
        group = rule.get("secretGroup", 1)
        is_url = bool(re.match(r"^(?:\\b)?(?:\(\?:)?https", pattern))
        value = _capture_source(pattern, group)
        fmt = pattern if is_url or not value else value
        fmt = re.sub(r"^(?:\\b)+|(?:\\b|\(\?:\[\^\\w-\]\|\\Z\))+$", "", fmt)
        re.compile(fmt)
        if fmt.startswith('"'):  # a quoted value after a keyword: the assignment is the format
            kinds.append({"kind": rid, "format": fmt.strip('"'), "key": _env_key(rid), "label": "secret:",
                          "template": 'administrator_login_password = "{value}"', "shape": "assignment",
                          "source": f"{GITLEAKS} rule {rid}", "description": rule.get("description", "")})  # fmt: skip
            continue
        kinds.append({"kind": rid, "format": fmt, "key": _env_key(rid), "label": None,
                      "shape": "url" if is_url else "value",
                      "source": f"{GITLEAKS} rule {rid}", "description": rule.get("description", "")})  # fmt: skip
    return kinds


def manual_kinds() -> list[dict[str, Any]]:
    kinds = [
        {"kind": kind, "generator": generator, "template": template, "label": label,
         "shape": shape, "key": "password", "source": OURS}
        for kind, generator, template, label, shape in _MANUAL
    ]  # fmt: skip
    kinds += [
        {"kind": kind, "format": fmt, "key": key, "label": label, "shape": "value",
         "source": f"{DETECT_SECRETS} plugin denylist / tests"}
        for kind, fmt, key, label in _DETECT_SECRETS_FORMATS
    ]  # fmt: skip
    return kinds


def make_secret(kind: dict[str, Any], rng: random.Random) -> Secret:
    value = gen.generate(kind, rng)
    template = kind.get("template", "{value}")
    key = rng.choice(_PW_KEYS) if "{key}" in template else kind.get("key", "")
    text = template.format(key=key, value=value)
    secret = _core(kind, value)
    return Secret(kind["kind"], text, secret, kind["source"])


def _core(kind: dict[str, Any], value: str) -> str:
    """The part of a value that must vanish; a URL's scheme and host may stay."""
    if kind.get("shape") == "url" or value.startswith(("https://", "http://")):
        tail = value.split("://", 1)[-1]
        authority, _, path = tail.partition("/")
        return authority.rsplit("@", 1)[0] if "@" in authority else path
    if kind["kind"] == "gitlab-session-cookie":
        return value.split("=", 1)[1]
    if value.startswith("PuTTY"):
        return value.split("Private-Lines: 1\n")[1].split("\n")[0]
    if value.startswith("-----BEGIN"):
        return value.replace("\\n", "\n").split("\n")[1]
    if not value.isascii():
        normal = unicodedata.normalize("NFKC", value)
        return "".join(c for c in normal if unicodedata.category(c) != "Cf")
    return value


def build_corpus(kinds: list[dict[str, Any]], seed: int = 20260110) -> list[Secret]:
    rng = random.Random(seed)
    out = [make_secret(kind, rng) for kind in kinds for _ in range(PER_KIND)]
    known = {k["kind"] for k in kinds}
    out += [
        Secret(kind, text, secret, source)
        for kind, text, secret, source in _PUBLIC
        if kind in known
    ]
    return out


# -- contexts ------------------------------------------------------------------------


def contexts(secret: Secret, kind: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The bare text, then the same secret logged in six natural places."""
    t = secret.text
    key = kind.get("key") or "credential"
    env = gen.env_name(key)
    yield "bare", t
    if kind.get("shape") == "assignment":
        escaped = t.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        yield (
            "log",
            f"2026-01-10 14:32:07,123 WARN app.config: loaded override {t} from environment",
        )
        yield "json", f'{{"level":"error","msg":"{escaped}","status":401}}'
        yield "env", f"# exported by deploy.sh\n{t}\nDEBUG=false"
        yield (
            "url",
            f"retrying after 401 from https://api.example.com/v2/sync with {t} (attempt 2/3)",
        )
        yield "cli", f"$ ./run.sh --verbose {t} --region eu-west-1"
        yield (
            "trace",
            (
                'Traceback (most recent call last):\n  File "/srv/app/settings.py", line 12, in load\n'
                f"    {t}\nValueError: could not parse setting"
            ),
        )
        return
    if kind.get("shape") == "url":
        yield "log", f"2026-01-10T14:32:07.123Z ERROR [notifier] POST {t} failed: 404 Not Found"
        yield "json", f'{{"level":"error","endpoint":"{t}","status":404}}'
        yield "env", f"{env}={t}"
        yield "url", f"redirected to {t} after 3 hops"
        yield "cli", f"$ curl -sS -X POST {t} -d @payload.json"
        yield (
            "trace",
            (
                'Traceback (most recent call last):\n  File "/srv/app/notify.py", line 41, in send\n'
                f'    requests.post("{t}", json=body)\nConnectionError: {t}'
            ),
        )
        return
    yield (
        "log",
        (
            f"2026-01-10T14:32:07.123Z ERROR [worker-3] upstream call failed, credential {t} "
            "rejected (attempt 2 of 3)"
        ),
    )
    yield "json", f'{{"level":"error","{key}":"{t}","status":401}}'
    yield "env", f"{env}={t}"
    yield "url", f"GET https://api.example.com/v1/items?{key}={quote(t, safe='')}&page=2 -> 401"
    yield "cli", f"$ deploy-tool push --{key.replace('_', '-').lower()} {t} --region eu-west-1"
    yield (
        "trace",
        (
            'Traceback (most recent call last):\n  File "/srv/app/client.py", line 88, in connect\n'
            f'    client = Client({key}="{t}")\nValueError: rejected {t}'
        ),
    )


# -- harmless text -------------------------------------------------------------------

_LOG_LINES = (
    "Request timed out after 30s",
    "Rate limited, retry after 2 seconds",
    "Tool web_search returned 0 results",
    "Connection reset by peer",
    "HTTP 503 Service Unavailable",
    "retry 3 of 5 failed; giving up",
    "Could not parse tool output as JSON",
    "Upstream returned 500 (request 481516)",
    "Upstream service unavailable (503)",
    "Dependency unavailable after 3 retries",
    "token: expired",
    "password rejected: too short",
    "Authentication failed for the current session",
    "credentials: missing",
    "Bearer auth is required for this endpoint",
    "author: EvalAgent",
    "key not found in cache",
    "error_code=TIMEOUT latency_ms=30000 success=false",
    "Model gpt-4o-mini returned finish_reason=length",
    "Queue depth 17, workers 4, backlog growing",
    "retrying in 250ms (attempt 2/3)",
    "Failed to decode UTF-8 at byte 17",
    "Upstream returned 429 Too Many Requests",
    "Database query took 1500 ms, index scan on events",
    "Unexpected end of stream after 512 bytes",
    "The scheduler skipped 1 run because the previous one was still active",
    "Disk usage at 91 percent on the data volume",
    "Deadline exceeded while waiting for the queue",
    "ResearchAgent called fetch_page 12 times in one turn",
    "Resource temporarily unavailable (errno 11)",
    "Invalid argument: limit must be between 1 and 100",
    "p95 latency rose from 900 ms to 4100 ms (ratio 4.5)",
    "Quota exceeded: 1000 requests per day",
    "The model replied with an empty message",
    "Scheduled task rag-refresh finished in 42 minutes",
    "Version 2.4.1 released with bug fixes",
    "std::vector<int> overflowed in the parser",
    "Translation finished: 3 paragraphs, 2 tables",
    "Summary: 5 proposals pending, 2 approved, 1 rejected",
    "The secret to stability is fewer moving parts",
    "ratio 0.25 exceeded threshold 0.2",
    "thumbs up from the user",
    "and/or either way, 50/50 chance",
    "context deadline exceeded",
    "dial tcp: lookup api.search.example: no such host",
    "HTTPSConnectionPool(host='api.search.example', port=443): Read timed out. (read timeout=30)",
    "requests.exceptions.ConnectionError: Max retries exceeded with url: /v1/search",
    "psycopg2.OperationalError: could not connect to server: Connection refused",
    "sqlite3.OperationalError: database is locked",
    "redis.exceptions.TimeoutError: Timeout reading from socket",
    "java.lang.NullPointerException: Cannot invoke String.length() because s is null",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "Error: ECONNREFUSED while connecting to the upstream",
    "ENOENT: no such file or directory, open config.json",
    "Back-off restarting failed container web in pod web-7d9f8",
    "OOMKilled: container exceeded its memory limit of 512Mi",
    "Readiness probe failed: HTTP probe failed with statuscode: 503",
    "The read operation timed out",
    "SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: unable to get local issuer certificate",
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    "KeyError: 'results'",
    "IndexError: list index out of range",
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "AttributeError: 'NoneType' object has no attribute 'get'",
    "RecursionError: maximum recursion depth exceeded while calling a Python object",
    "asyncio.exceptions.CancelledError",
    "openai.RateLimitError: Rate limit reached on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500",
    "openai.APITimeoutError: Request timed out.",
    "anthropic.InternalServerError: Overloaded",
    "The tool returned malformed JSON: missing closing brace at position 212",
    "Output exceeded 4096 tokens and was truncated",
    "Context window exceeded: 131072 tokens requested, 128000 allowed",
    "search backend returned HTTP 502 Bad Gateway",
    "fetch_page: page larger than 5 MB, skipped",
    "run_python: execution exceeded 10s wall clock",
    "run_python: SyntaxError: invalid syntax (line 3)",
    "file_read: permission denied",
    "db_query: statement timeout after 5000ms",
    "db_query: relation events does not exist",
    "send_message: recipient not found",
    "send_message: message too long (4100 characters, limit 4000)",
    "web_search: zero results for the query",
    "WARN cache miss ratio 0.42 above 0.3 for 10 minutes",
    "INFO worker 3 started, 8 threads, pid 4242",
    "INFO checkpoint written in 87 ms",
    "DEBUG tool call complete: web_search ok in 912 ms",
    "ERROR task daily-digest failed: upstream timeout",
    "WARN retrying request 2 of 3 after 1.5 s",
    "INFO loaded 42 tools and 6 agents",
    "INFO deploy finished in 3m12s",
    "circuit breaker opened for web_search after 5 consecutive failures",
    "circuit breaker closed for web_search",
    "proposal 17 approved by reviewer",
    "patch rejected at the audit gate: grant not allowed",
    "ledger verified: 1204 events, chain intact",
    "snapshot restored at seq 1180",
    "healthcheck ok",
    "GC pause 38 ms",
    "heap usage 71 percent",
    "socket closed by remote end",
    "TLS handshake timeout",
    "broken pipe while writing response",
    "too many open files",
    "no space left on device",
    "read-only file system",
    "address already in use",
    "connection pool exhausted (size 20)",
    "lock wait timeout exceeded; try restarting transaction",
    "deadlock detected",
    "duplicate key value violates unique constraint events_pkey",
    "serialization failure, retrying transaction",
    "HTTP/1.1 404 Not Found",
    "Content-Type: application/json; charset=utf-8",
    "Accept-Encoding: gzip, deflate, br",
    "User-Agent: ouroboros-agent/0.1",
    "Cache-Control: no-cache",
    "Retry-After: 120",
    "X-RateLimit-Remaining: 0",
    "status=failed reason=timeout tool=web_search agent=ResearchAgent",
    "event_type=tool_call success=false error_code=HTTP_500",
    "the user corrected the answer: wrong date format",
    "feedback: thumbs down on the summary",
    "escalated to a human: missing tool",
    "agent asked for clarification twice",
    "the answer cited 3 sources, 1 unreachable",
    "benchmark: 169800 events/s on one core",
    "commit history rewritten? no, a rollback is a new patch",
    "PermissionError: [Errno 13] Permission denied",
    "FileNotFoundError: [Errno 2] No such file or directory",
    "ConnectionRefusedError: [Errno 111] Connection refused",
    "TimeoutError: [Errno 110] Connection timed out",
    "BrokenPipeError: [Errno 32] Broken pipe",
    "OSError: [Errno 28] No space left on device",
    "MemoryError",
    "KeyboardInterrupt",
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    "ZeroDivisionError: division by zero",
    "NotImplementedError: streaming is not supported yet",
    "AssertionError: expected 3 results, got 0",
    "ImportError: cannot import name 'Client' from 'vendor'",
    "ModuleNotFoundError: No module named 'yaml'",
    "Exit code 137",
    "exit status 1",
    "Segmentation fault (core dumped)",
    "Killed",
)  # fmt: skip

_PROSE = (
    "The agent summarised the report in three paragraphs and asked whether to send it.",
    "Users prefer shorter answers when the question is a simple lookup.",
    "Most failures last week came from one flaky search provider.",
    "After the timeout was raised to sixty seconds, the error rate fell below one percent.",
    "The reviewer approved the proposal but asked for a smaller retry budget.",
    "Please summarise the meeting notes and list the open questions.",
    "The weather tool answered with yesterday's forecast.",
    "We rolled back the prompt change because corrections doubled overnight.",
    "The translation was accurate but the tone was too formal.",
    "Nothing in the logs explains the spike in latency around noon.",
    "The scheduler runs the digest every morning at seven.",
    "A human should review any change to the permissions of an agent.",
    "The model kept repeating the same search with slightly different words.",
    "Errors cluster on Mondays when the weekly reports are generated.",
    "The cache hit rate improved after the warm-up job was added.",
    "She asked the assistant to compare two contracts and highlight the differences.",
    "The answer was correct, but it ignored the requested format.",
    "Latency is dominated by the first call to the embedding service.",
    "Our goal is fewer escalations without lowering the quality bar.",
    "The proposal suggests one more retry and a longer timeout for web search.",
    "He thanked the assistant and closed the conversation.",
    "The team agreed to keep the old behaviour behind a flag for one release.",
    "Every change is signed, tested, audited and recorded in the ledger.",
    "The circuit breaker stopped the loop after three failed merges.",
    "Monitoring shows the new version is stable after twenty-four hours.",
    "The tool description was ambiguous, so the agent picked the wrong tool.",
    "Two of the five sources were paywalled and could not be read.",
    "The assistant declined to answer because the request needed a human decision.",
    "Feedback was mostly positive, with a few complaints about length.",
    "The evaluation found no regression in accuracy on the held-out set.",
    "Keep the error messages short and say what to do next.",
    "The dashboard shows the error rate per tool and per agent.",
    "A failing scheduled task is retried three times before it is reported.",
    "The planner drafts a proposal for each finding above the threshold.",
    "This release removes the deprecated options from the configuration.",
    "The user asked for the report in German instead of English.",
    "Sessions last about an hour and hold around thirty tool calls.",
    "The new prompt asks the model to cite its sources explicitly.",
    "No data left the machine during the evaluation.",
    "Thanks, that fixed it!",
)  # fmt: skip


def _python_errors() -> list[str]:
    snippets = ("[][1]", "{}['k']", "1/0", "int('x1')", "None.get", "'a' + 1", "float('nan') < 'a'",
                "[].pop()", "import nonexistent_module_xyz", "b'\\xff'.decode('utf-8')",
                "(1).__len__", "iter(3)", "next(iter([]))", "'abc'.index('z')", "dict(a=1)['b']",
                "tuple()[0]", "set().remove(1)", "'x'.encode('nope')", "range(1, 2, 0)",
                "__import__('json').loads('{')", "__import__('json').loads('')", "max([])",
                "divmod(1, 0)", "bytes(-1)", "'%d' % 'x'", "list(1)", "chr(-1)", "int('1' * 5000)")  # fmt: skip
    out = []
    for snippet in snippets:
        try:
            eval(snippet)
        except Exception as e:
            out.append(f"{type(e).__name__}: {e}")
    return out


def _sqlite_errors() -> list[str]:
    con = sqlite3.connect(":memory:")
    out = []
    for sql in ("select * from missing", "selct 1", "create table t(a unique)",
                "insert into t values (1)", "insert into t values (1)", "select a from t where",
                "select nosuchfn(1)", "drop table missing"):  # fmt: skip
        try:
            con.execute(sql)
        except sqlite3.Error as e:
            out.append(f"sqlite3.{type(e).__name__}: {e}")
    return out


def build_harmless() -> list[dict[str, str]]:
    rows = [{"text": t, "source": "written for this project"} for t in _LOG_LINES + _PROSE]
    rows += [{"text": os.strerror(n), "source": "os.strerror (C library messages)"}
             for n in range(1, 134) if not os.strerror(n).startswith("Unknown error")]  # fmt: skip
    rows += [{"text": f"{s.value} {s.phrase}: {s.description}", "source": "http.HTTPStatus"}
             for s in http.HTTPStatus if s.description]  # fmt: skip
    rows += [{"text": t, "source": "CPython 3.11 exception messages"} for t in _python_errors()]
    rows += [{"text": t, "source": "SQLite error messages"} for t in _sqlite_errors()]
    seen: set[str] = set()
    return [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))]  # type: ignore[func-returns-value]


# -- loading -------------------------------------------------------------------------


def load_kinds() -> dict[str, dict[str, Any]]:
    return {k["kind"]: k for k in json.loads((DATA / "kinds.json").read_text())}


def load_corpus() -> list[Secret]:
    with (DATA / "corpus.jsonl").open(encoding="utf-8") as handle:
        return [Secret(**json.loads(line)) for line in handle]


def load_harmless() -> list[str]:
    with (DATA / "harmless.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild the labelled secrets corpus.")
    parser.add_argument("--gitleaks", type=Path, help="gitleaks' config/gitleaks.toml")
    args = parser.parse_args()
    if args.gitleaks:
        kinds = gitleaks_kinds(args.gitleaks) + manual_kinds()
        for kind in kinds:  # where we have a rule named like gitleaks', expect its label
            known = kind["kind"] in RULE_LABELS and kind["kind"] not in _UNLABELLED
            if kind["label"] is None and known:
                kind["label"] = f"secret:{kind['kind']}"
        (DATA / "kinds.json").write_text(json.dumps(kinds, indent=1, ensure_ascii=False) + "\n")
    kinds_list = list(load_kinds().values())
    with (DATA / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for secret in build_corpus(kinds_list):
            handle.write(json.dumps(secret.__dict__, ensure_ascii=False) + "\n")
    with (DATA / "harmless.jsonl").open("w", encoding="utf-8") as handle:
        for row in build_harmless():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
