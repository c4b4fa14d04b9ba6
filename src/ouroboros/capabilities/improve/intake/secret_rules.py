"""Token formats the sanitizer recognises by shape, one named rule per kind.

The names are what tests and docs cite ("all planted secrets of every kind go").
Patterns are case-sensitive: vendors publish their prefixes in one case, and a
case-insensitive ``AKIA…`` would start eating ordinary words. Sources: each
vendor's token-format documentation and the rule sets of gitleaks and
detect-secrets (which also runs, as a second layer, in :mod:`sanitizer`).
"""

from __future__ import annotations

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
