"""What names a secret: token formats by issuer, key names, auth schemes, CLI flags.

The sanitizer is default-deny (anything that is not a word, a small number or another
kept shape is replaced), so these rules do not decide *whether* a token goes; they
decide what the placeholder says (``<secret:github-pat>`` rather than ``<token>``),
catch secrets whose pieces would each look harmless, and find values behind key
names (``db_pass: hunter2``).

Labels follow gitleaks' rule ids (``gitleaks/gitleaks`` ``config/gitleaks.toml``, MIT)
so a placeholder can be looked up there; the patterns are written here from the
issuers' published token formats, with gitleaks' and detect-secrets' rule sets as the
reference. Patterns are case-sensitive where the issuer's prefix is (a case-blind
``AKIA`` would eat ordinary words); AWS key ids are also matched in lower case, as
they appear after a careless ``.lower()``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from functools import lru_cache

_E = r"(?![A-Za-z0-9_\-])"  # a token format ends where its alphabet does
_B = r"(?<![A-Za-z0-9_\-])"

#: (label, pattern); searched inside tokens that are at least 12 characters long.
TOKEN_RULES: tuple[tuple[str, str], ...] = (
    ("aws-access-key", _B + r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}" + _E),
    ("aws-access-key", _B + r"(?:akia|asia|abia|acca)[a-z0-9]{16}" + _E),
    ("aws-amazon-bedrock-api-key", r"ABSK[A-Za-z0-9+/]{100,}={0,2}|bedrock-api-key-[A-Za-z0-9+/=]{20,}"),
    ("1password-secret-key", r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"),
    ("1password-service-account-token", r"ops_eyJ[A-Za-z0-9+/]{100,}"),
    ("adobe-client-secret", _B + r"p8e-[A-Za-z0-9]{32}" + _E),
    ("age-secret-key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ("airtable-personnal-access-token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    ("alibaba-access-key-id", _B + r"LTAI[A-Za-z0-9]{20}" + _E),
    ("anthropic-api-key", r"sk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_\-]{32,}"),
    ("artifactory-api-key", _B + r"AKCp[A-Za-z0-9]{40,}"),
    ("artifactory-reference-token", _B + r"cmVmd[A-Za-z0-9]{50,}"),
    ("authress-service-client-access-key", r"(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_\-][A-Za-z0-9\-]{10,32}\.[A-Za-z0-9+/_=\-]{30,}"),
    ("azure-ad-client-secret", r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"),
    ("beamer-api-token", _B + r"b_[a-z0-9=_\-]{44}" + _E),
    ("clickhouse-cloud-api-secret-key", _B + r"4b1d[A-Za-z0-9]{38}" + _E),
    ("clojars-api-token", r"CLOJARS_[a-z0-9]{60}"),
    ("cloudflare-origin-ca-key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    ("databricks-api-token", _B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E),
    ("defined-networking-api-token", r"dnkey-[a-z0-9=_\-]{26}-[a-z0-9=_\-]{52}"),
    ("digitalocean-pat", _B + r"do[opr]_v1_[a-f0-9]{64}" + _E),
    ("doppler-api-token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    ("dropbox-short-lived-api-token", _B + r"sl\.[A-Za-z0-9\-=_]{130,}"),
    ("duffel-api-token", r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}"),
    ("dynatrace-api-token", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    ("easypost-api-token", _B + r"EZ[AT]K[A-Za-z0-9]{54}" + _E),
    ("facebook-page-access-token", _B + r"EAA[MC][A-Za-z0-9]{100,}"),
    ("facebook-access-token", _B + r"\d{15,16}(?:\||%7C|%)[0-9A-Za-z\-_]{27,40}" + _E),
    ("flutterwave-secret-key", r"FLW(?:SECK|PUBK)_TEST-[A-Ha-h0-9]{12,32}(?:-X)?"),
    ("flyio-access-token", r"fo1_[\w\-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3}"),
    ("frameio-api-token", r"fio-u-[A-Za-z0-9\-_=]{64}"),
    ("gcp-api-key", _B + r"AIza[\w\-]{35}" + _E),
    ("gcp-oauth-client-secret", _B + r"GOCSPX-[A-Za-z0-9_\-]{28}" + _E),
    ("gcp-oauth-access-token", _B + r"ya29\.[0-9A-Za-z_\-]{20,}"),
    ("github-pat", _B + r"ghp_[0-9A-Za-z]{36}" + _E),
    ("github-oauth", _B + r"gho_[0-9A-Za-z]{36}" + _E),
    ("github-app-token", _B + r"gh[us]_[0-9A-Za-z]{36}" + _E),
    ("github-refresh-token", _B + r"ghr_[0-9A-Za-z]{36,}" + _E),
    ("github-fine-grained-pat", r"github_pat_\w{60,}"),
    ("gitlab-pat-routable", r"glpat-[0-9A-Za-z_\-]{27,300}\.[0-9a-z]{9}"),
    ("gitlab-runner-authentication-token-routable", r"glrt-t\d_[0-9A-Za-z_\-]{27,300}\.[0-9a-z]{9}"),
    ("gitlab-pat", _B + r"glpat-[\w\-]{20,}"),
    ("gitlab-cicd-job-token", r"glcbt-[0-9A-Za-z]{1,5}_[0-9A-Za-z_\-]{20}"),
    ("gitlab-deploy-token", _B + r"gldt-[0-9A-Za-z_\-]{20,}"),
    ("gitlab-feature-flag-client-token", r"glffct-[0-9A-Za-z_\-]{20,}"),
    ("gitlab-feed-token", _B + r"glft-[0-9A-Za-z_\-]{20,}"),
    ("gitlab-incoming-mail-token", r"glimt-[0-9A-Za-z_\-]{25,}"),
    ("gitlab-kubernetes-agent-token", r"glagent-[0-9A-Za-z_\-]{50,}"),
    ("gitlab-oauth-app-secret", r"gloas-[0-9A-Za-z_\-]{64}"),
    ("gitlab-ptt", r"glptt-[0-9a-f]{40}"),
    ("gitlab-rrt", r"GR1348941[\w\-]{20,}"),
    ("gitlab-runner-authentication-token", _B + r"glrt-[0-9A-Za-z_\-]{20,}"),
    ("gitlab-scim-token", r"glsoat-[0-9A-Za-z_\-]{20,}"),
    ("gitlab-session-cookie", r"_gitlab_session=[0-9a-z]{32}"),
    ("grafana-api-key", r"eyJrIjoi[A-Za-z0-9]{70,}={0,3}"),
    ("grafana-cloud-api-token", _B + r"glc_[A-Za-z0-9+/]{32,}={0,3}"),
    ("grafana-service-account-token", _B + r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    ("groq-api-key", _B + r"gsk_[A-Za-z0-9]{40,}"),
    ("harness-api-key", r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    ("hashicorp-tf-api-token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9\-_=]{60,70}"),
    ("heroku-api-key-v2", r"HRKU-AA[0-9A-Za-z_\-]{58}"),
    ("huggingface-access-token", _B + r"hf_[A-Za-z]{34}" + _E),
    ("huggingface-organization-api-token", r"api_org_[A-Za-z]{34}"),
    ("infracost-api-token", _B + r"ico-[A-Za-z0-9]{32}" + _E),
    ("intra42-client-secret", r"s-s4t2(?:ud|af)-[a-fA-F0-9]{64}"),
    ("jwt", _B + r"ey[A-Za-z0-9]{17,}\.ey[A-Za-z0-9/\\_\-]{17,}\.(?:[A-Za-z0-9/\\_\-]{10,}={0,2})?"),
    ("jwt-base64", _B + r"ZXlK[A-Za-z0-9+/]{40,}={0,2}"),
    ("linear-api-key", r"lin_api_[A-Za-z0-9]{40}"),
    ("lob-api-key", _B + r"(?:live|test)_(?:pub_)?[a-f0-9]{31,35}" + _E),
    ("mailchimp-api-key", _B + r"[a-f0-9]{32}-us\d{1,2}" + _E),
    ("mailgun-private-api-token", _B + r"key-[a-f0-9]{32}" + _E),
    ("mailgun-pub-key", r"pubkey-[a-f0-9]{32}"),
    ("mapbox-api-token", r"[ps]k\.[A-Za-z0-9]{60}\.[A-Za-z0-9]{22}"),
    ("maxmind-license-key", r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk"),
    ("new-relic-browser-api-token", r"NRJS-[a-f0-9]{19}"),
    ("new-relic-insert-key", r"NRII-[A-Za-z0-9\-]{32}"),
    ("new-relic-user-api-key", r"NRAK-[A-Za-z0-9]{27}"),
    ("notion-api-token", _B + r"ntn_\d{11}[A-Za-z0-9]{35}" + _E),
    ("notion-api-token", _B + r"secret_[A-Za-z0-9]{43}" + _E),
    ("npm-access-token", _B + r"npm_[A-Za-z0-9]{36}" + _E),
    ("octopus-deploy-api-key", _B + r"API-[A-Z0-9]{26}" + _E),
    ("openai-api-key", _B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"),
    ("openai-api-key", _B + r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"),
    ("openrouter-api-key", _B + r"sk-or-v1-[a-f0-9]{64}"),
    ("openshift-user-token", r"sha256~[\w\-]{43}"),
    ("perplexity-api-key", _B + r"pplx-[A-Za-z0-9]{40,}"),
    ("planetscale-api-token", r"pscale_(?:tkn|oauth|pw)_[\w=.\-]{32,64}"),
    ("postman-api-token", r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    ("prefect-api-token", _B + r"pnu_[A-Za-z0-9]{36}" + _E),
    ("pulumi-api-token", _B + r"pul-[a-f0-9]{40}" + _E),
    ("pypi-upload-token", r"pypi-AgEIcHlwaS5vcmc[\w\-]{50,}|pypi-AgENdGVzdC5weXBpLm9yZw[\w\-]{50,}"),
    ("readme-api-token", _B + r"rdme_[a-z0-9]{70}"),
    ("replicate-api-token", _B + r"r8_[A-Za-z0-9]{30,}" + _E),
    ("rubygems-api-token", _B + r"rubygems_[a-f0-9]{48}" + _E),
    ("scalingo-api-token", _B + r"tk-us-[\w\-]{48}" + _E),
    ("sendgrid-api-token", _B + r"SG\.[A-Za-z0-9_\-]{20,24}\.[A-Za-z0-9_\-]{39,50}"),
    ("sendgrid-api-token", _B + r"SG\.[A-Za-z0-9=_\-.]{66}"),
    ("sendinblue-api-token", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    ("sentry-org-token", r"sntrys_eyJpYXQiO[A-Za-z0-9+/=_]{50,}"),
    ("sentry-user-token", _B + r"sntryu_[a-f0-9]{64}" + _E),
    ("settlemint-access-token", _B + r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}" + _E),
    ("shippo-api-token", _B + r"shippo_(?:live|test)_[a-fA-F0-9]{40}" + _E),
    ("shopify-access-token", _B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E),
    ("slack-app-token", r"xapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+"),
    ("slack-config-token", r"xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}|xoxe-\d-[A-Za-z0-9]{100,}"),
    ("slack-token", _B + r"xox[abposre]-[A-Za-z0-9\-]{8,}"),
    ("sourcegraph-access-token", _B + r"sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40}"),
    ("square-access-token", _B + r"(?:EAAA|sq0atp-)[\w\-]{22,60}" + _E),
    ("square-oauth-secret", _B + r"sq0csp-[0-9A-Za-z\-_]{43}" + _E),
    ("stripe-access-token", _B + r"(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}" + _E),
    ("stripe-webhook-secret", _B + r"whsec_[A-Za-z0-9]{24,}" + _E),
    ("telegram-bot-api-token", _B + r"\d{5,16}:A[A-Za-z0-9_\-]{34}" + _E),
    ("twilio-api-key", _B + r"SK[0-9a-fA-F]{32}" + _E),
    ("twilio-account-sid", _B + r"AC[a-z0-9]{32}" + _E),
    ("twitter-bearer-token", r"A{22}[A-Za-z0-9%]{80,100}"),
    ("typeform-api-token", _B + r"tfp_[A-Za-z0-9\-_.=]{59}"),
    ("vault-batch-token", _B + r"hvb\.[\w\-]{100,}"),
    ("vault-service-token", _B + r"hvs\.[\w\-]{24,}|(?<![A-Za-z0-9_\-.])s\.[A-Za-z0-9]{24}" + _E),
    ("xai-api-key", _B + r"xai-[A-Za-z0-9]{40,}" + _E),
    ("yandex-access-token", _B + r"t1\.[A-Za-z0-9_\-]+=*\.[A-Za-z0-9_\-]{86}=*"),
    ("yandex-api-key", _B + r"AQVN[A-Za-z0-9_\-]{35,38}" + _E),
    ("yandex-aws-access-token", _B + r"YC[A-Za-z0-9_\-]{38}" + _E),
    ("discord-bot-token", _B + r"[MNO][A-Za-z\d_\-]{23,27}\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27,40}" + _E),
    ("artifactory-api-key", _B + r"AKC[A-Za-z0-9]{10,}" + _E),
)  # fmt: skip

_RULES = re.compile("|".join(f"(?P<r{i}>{p})" for i, (_, p) in enumerate(TOKEN_RULES)))
RULE_LABELS: frozenset[str] = frozenset(label for label, _ in TOKEN_RULES)
MIN_RULE_LENGTH = 12
MAX_RULE_LENGTH = 1024  # bounds the cost of the search (every format here is shorter)


@lru_cache(maxsize=16384)
def rule_label(token: str) -> str | None:
    """The label of the first named format found in ``token``, if any."""
    if not MIN_RULE_LENGTH <= len(token) <= MAX_RULE_LENGTH:
        return None  # longer tokens are never words: replaced whole, no name needed
    match = _RULES.search(token)
    if match is None:
        return None
    return TOKEN_RULES[int(match.lastgroup[1:])][0]  # type: ignore[index]


def first_rule_match(token: str) -> tuple[str, int, int] | None:
    """The first named format in ``token``: its label and span."""
    match = _RULES.search(token, 0, MAX_RULE_LENGTH)
    if match is None:
        return None
    return TOKEN_RULES[int(match.lastgroup[1:])][0], match.start(), match.end()  # type: ignore[index]


_HEXPAIRS = re.compile(r"(?:[0-9a-fA-F]{2}){12,}")
_B64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,3}")


def decoded_label(token: str) -> str | None:
    """A named format hidden by hex or base64 encoding (``6768705f…`` is ``ghp_…``)."""
    raw: bytes | None = None
    if _HEXPAIRS.fullmatch(token):
        raw = bytes.fromhex(token)
    elif _B64.fullmatch(token) and len(token.rstrip("=")) % 4 != 1:
        try:
            raw = base64.urlsafe_b64decode(token.replace("+", "-").replace("/", "_") + "===")
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or not raw.isascii():
        return None
    text = raw.decode("ascii")
    if not text.isprintable():
        return None
    label = rule_label(text)
    if label is None and re.fullmatch(r"[^:\s]{1,64}:[^\s]{4,}", text):
        return "basic-auth"  # user:password, as in an Authorization: Basic header
    return label


# -- names that make the value after them a secret ------------------------------------

#: A key component (``db_pass`` → ``db`` + ``pass``; ``dbPass`` → ``db`` + ``pass``) that
#: marks the value as a secret, and the placeholder label it gets.
KEY_COMPONENTS: dict[str, str] = {
    **dict.fromkeys(("pass", "passwd", "password", "passwords", "passphrase", "passcode",
                     "pw", "pwd", "pword", "pswd", "passwort", "contrasena", "motdepasse"), "password"),
    **dict.fromkeys(("secret", "secrets", "secretkey", "clientsecret"), "secret"),
    **dict.fromkeys(("token", "authtoken", "accesstoken", "refreshtoken", "idtoken", "jwt",
                     "bearer", "csrf", "xsrf"), "token"),
    **dict.fromkeys(("apikey", "apitoken", "accesskey", "appkey", "licensekey", "key",
                     "accountkey", "masterkey", "signingkey", "encryptionkey"), "api-key"),
    **dict.fromkeys(("auth", "authorization", "oauth", "xauth"), "auth"),
    **dict.fromkeys(("credential", "credentials", "cred", "creds"), "credential"),
    **dict.fromkeys(("session", "sessionid", "sessid", "sid", "cookie", "cookies"), "session"),
    **dict.fromkeys(("pin", "otp", "totp", "hotp", "mfa", "cvv", "cvc", "cvv2"), "pin"),
    **dict.fromkeys(("signature", "sig", "hmac"), "signature"),
    **dict.fromkeys(("privatekey", "private"), "private-key"),
    **dict.fromkeys(("dsn", "connstr", "connectionstring"), "connection-string"),
    **dict.fromkeys(("salt",), "secret"),
}  # fmt: skip
#: Substrings that make a key a secret wherever they occur (``mysqlrootpassword``).
KEY_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("passw", "password"), ("passphrase", "password"), ("secret", "secret"), ("token", "token"),
    ("apikey", "api-key"), ("privatekey", "private-key"), ("accesskey", "api-key"),
    ("credential", "credential"), ("cookie", "session"),
)  # fmt: skip
#: Cheap pre-filter: a key is only looked at if its lower-cased form contains one of these.
KEY_HINT = re.compile(
    r"(?i)pass|pw|pswd|secret|token|key|auth|cred|sess|sid|cookie|pin|otp|cvv|cvc|sig|hmac"
    r"|jwt|bearer|private|dsn|conn|salt|csrf|xsrf|mfa|contrase|motdepasse"
)
_KEY_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
#: Components that look like keys but are not (``author``, ``keyboard``, ``tokens`` counts).
NOT_KEYS = frozenset({"author", "authors", "authored", "authority", "keyboard", "keys",
                      "tokens", "tokenizer", "tokenize", "keyword", "keywords", "passed",
                      "passing", "passes", "bypass", "compass", "pinned", "spin", "sessions",
                      "pins", "signal", "signed", "design", "assign", "private_ip"})  # fmt: skip


_NOT_KEY_ENDINGS = ("error", "errors", "exception", "warning", "failure", "failed", "count",
                    "length", "size", "limit", "ttl", "expiry", "expired", "type", "format")  # fmt: skip


@lru_cache(maxsize=8192)
def key_label(key: str) -> str | None:
    """The placeholder label for the value of ``key``, or None when ``key`` is no secret's name."""
    if not KEY_HINT.search(key):
        return None
    name = key.strip("-_.$@'\"`:[]").rsplit(".", 1)[-1]
    lowered = re.sub(r"[^a-z0-9]", "", name.lower())
    if not lowered or lowered in NOT_KEYS or lowered.endswith(_NOT_KEY_ENDINGS):
        return None
    if lowered.startswith(("aws", "amazon")) and "secret" in lowered:
        return "aws-secret-access-key"
    if lowered == "accountkey":
        return "azure-storage-account-key"
    for component in _KEY_SPLIT.findall(name.replace("-", "_")):
        label = KEY_COMPONENTS.get(component.lower())
        if label is not None and component.lower() not in NOT_KEYS:
            return label
    if lowered in KEY_COMPONENTS:
        return KEY_COMPONENTS[lowered]
    for needle, label in KEY_SUBSTRINGS:
        if needle in lowered and not any(lowered.startswith(n) for n in NOT_KEYS):
            return label
    if lowered.endswith(("key", "pass", "pwd", "pw")):
        return "api-key" if lowered.endswith("key") else "password"
    return None


#: Values after a key name that are not secrets: states, empties, placeholders.
BENIGN_VALUES = frozenset({
    "none", "null", "nil", "true", "false", "yes", "no", "on", "off", "ok", "empty", "unset",
    "undefined", "missing", "expired", "invalid", "required", "rejected", "denied", "failed",
    "failure", "error", "unknown", "redacted", "hidden", "masked", "n/a", "na", "not", "set",
    "present", "absent", "provided", "changed", "updated", "revoked", "valid", "ok.", "wrong",
    "incorrect", "mismatch", "too", "short", "weak", "reset", "sent", "needed", "supplied",
})  # fmt: skip
TEMPLATE_REFERENCE = re.compile(
    r"\$\{?[A-Za-z_][A-Za-z0-9_.]*\}?|\{\{[^{}]{1,80}\}\}|%[A-Za-z_][A-Za-z0-9_]*%|\*+|x{3,}|X{3,}|\.{3}"
)

#: ``Authorization: <scheme> <credential>``.
AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "ssws", "apikey", "api-key", "ntlm",
                          "aws4-hmac-sha256"})  # fmt: skip
#: Attached ``-p`` values that are options of common tools, not passwords (gcc, find, ps).
NOT_P_VALUES = frozenset({"thread", "threads", "edantic", "edantic-errors", "ipe", "g", "ie",
                          "rint", "rint0", "rintf", "rune", "ath", "erm", "ort", "rofile"})  # fmt: skip
#: Commands whose ``-p``/``-a``/``--password`` argument is a password, even as a word.
PASSWORD_COMMANDS = frozenset({"sshpass", "redis-cli", "mysql", "mysqldump", "mysqladmin",
                               "mariadb", "mongo", "mongosh", "mongodump", "psql", "pg_dump",
                               "docker", "podman", "nerdctl", "helm", "htpasswd", "smbclient",
                               "rabbitmqctl", "keytool", "openssl"})  # fmt: skip
PASSWORD_FLAGS = frozenset({"-p", "-a", "--pass", "--password", "--passwd", "--auth", "-P",
                            "--storepass", "--keypass", "-passin", "-passout", "-storepass"})  # fmt: skip


# -- detect-secrets' plugins, as a second labeller ------------------------------------

#: detect-secrets 1.5 secret types (plugins with a format denylist) and our label for each.
DETECT_SECRETS_LABELS: dict[str, str] = {
    "Artifactory Credentials": "artifactory-credentials",
    "AWS Access Key": "aws-access-key",
    "Azure Storage Account access key": "azure-storage-account-key",
    "Basic Auth Credentials": "url-credentials",
    "Cloudant Credentials": "cloudant-credentials",
    "Discord Bot Token": "discord-bot-token",
    "GitHub Token": "github-pat",
    "GitLab Token": "gitlab-pat",
    "IBM Cloud IAM Key": "ibm-cloud-iam-key",
    "IBM COS HMAC Credentials": "ibm-cos-hmac-credentials",
    "JSON Web Token": "jwt",
    "Mailchimp Access Key": "mailchimp-api-key",
    "NPM tokens": "npm-access-token",
    "OpenAI Token": "openai-api-key",
    "Private Key": "private-key",
    "PyPI Token": "pypi-upload-token",
    "SendGrid API Key": "sendgrid-api-token",
    "Slack Token": "slack-token",
    "SoftLayer Credentials": "softlayer-credentials",
    "Square OAuth Secret": "square-oauth-secret",
    "Stripe Access Key": "stripe-access-token",
    "Telegram Bot Token": "telegram-bot-api-token",
    "Twilio API Key": "twilio-api-key",
}


class DetectSecretsLabeller:
    """Labels a token with the first detect-secrets plugin whose format denylist matches.

    Used only for tokens that are already being replaced and that our own rules could
    not name; detect-secrets is imported on first use (it takes ~0.3 s).
    """

    def __init__(self) -> None:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        # The library types its mapping with an unbound TypeVar; name the value type here.
        plugins: Mapping[str, type[object]] = get_mapping_from_secret_type_to_class()
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for secret_type, cls in sorted(plugins.items()):
            label = DETECT_SECRETS_LABELS.get(secret_type)
            if label is None:  # entropy, keyword and public-IP plugins: no format to name
                continue
            self._patterns.extend((p, label) for p in getattr(cls, "denylist", ()))

    def __call__(self, token: str) -> str | None:
        for pattern, label in self._patterns:
            if pattern.search(token):
                return label
        return None
