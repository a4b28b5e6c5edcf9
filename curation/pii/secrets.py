"""Secrets in code and config: known token formats, private keys, and secret-named
assignments whose value looks random. All reported as entity KEY."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

# (name, regex): token formats whose prefix or shape identifies the issuer, so a match
# needs no further evidence. Plain `re` syntax, no groups: they are joined into one
# alternation, which `re` scans about ten times faster than the `regex` module.
KNOWN_TOKENS: Final[tuple[tuple[str, str], ...]] = (
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    ("aws_mws_key", r"\bamzn\.mws\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("github_fine_grained", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    ("gitlab_token", r"\bgl(?:pat|oas|dt|rt|cbt|ptt|ft|imt|soat|ffct|agent)-[A-Za-z0-9_.\-]{20,}"),
    ("slack_token", r"\bxox[abposrce]-[A-Za-z0-9-]{10,}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_]{20,}",
    ),
    ("discord_webhook", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]+"),
    ("discord_bot_token", r"\b[MNO][A-Za-z\d_-]{23,25}\.[\w-]{6}\.[\w-]{27,38}\b"),
    ("telegram_bot_token", r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b"),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("google_oauth_secret", r"\bGOCSPX-[A-Za-z0-9_-]{28}\b"),
    ("google_oauth_token", r"\bya29\.[0-9A-Za-z_\-]{20,}"),
    ("google_refresh_token", r"\b1//0[0-9A-Za-z_-]{40,}"),
    (
        "openai_key",
        r"\bsk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}",
    ),
    ("openai_project_key", r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}"),
    ("anthropic_key", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}"),
    ("deepseek_key", r"\bsk-[a-f0-9]{32}\b"),
    ("groq_key", r"\bgsk_[A-Za-z0-9]{48,}\b"),
    ("perplexity_key", r"\bpplx-[A-Za-z0-9]{48,}\b"),
    ("xai_key", r"\bxai-[A-Za-z0-9]{70,}\b"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{34,}\b"),
    ("tavily_key", r"\btvly-(?:dev-|prod-)?[A-Za-z0-9]{32,}\b"),
    ("together_key", r"\btgp_v1_[A-Za-z0-9_-]{40,}"),
    ("llama_key", r"\bLLM\|[0-9]{15,}\|[A-Za-z0-9_-]{20,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ("atlassian_token", r"\bATATT3[A-Za-z0-9_\-=]{150,}"),
    ("atlassian_pat", r"\b(?:ATCTT3xFfGN0|ATBB)[A-Za-z0-9_=.\-]{30,}"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
    ("rubygems_key", r"\brubygems_[a-f0-9]{48}\b"),
    ("nuget_key", r"\boy2[a-z0-9]{43}\b"),
    ("clojars_token", r"\bCLOJARS_[a-z0-9]{60}\b"),
    ("docker_pat", r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}"),
    ("docker_swarm", r"\bSWM(?:TKN|KEY)-1-[A-Za-z0-9+/]{40,}(?:-[a-z0-9]{25})?"),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    ("figma_token", r"\bfig[dh]_[A-Za-z0-9_-]{40,}"),
    ("grafana_token", r"\b(?:glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})"),
    ("grafana_api_key", r"\beyJrIjoi[A-Za-z0-9]{60,400}={0,2}"),
    ("heroku_token", r"\bHRKU-[A-Za-z0-9_-]{20,}"),
    ("jfrog_token", r"\b(?:cmVmdGtu[A-Za-z0-9]{56}|AKCp[A-Za-z0-9]{69})\b"),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("sentry_token", r"\b(?:sntrys_eyJ[A-Za-z0-9+/=_-]{50,}|sntryu_[a-f0-9]{64})"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
    ("mailgun_key", r"\bkey-[a-f0-9]{32}\b"),
    ("mailchimp_key", r"\b[a-f0-9]{32}-us\d{1,2}\b"),
    ("brevo_key", r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b"),
    ("twilio_key", r"\b(?:SK|AC)[0-9a-f]{32}\b"),
    ("square_token", r"\b(?:sq0(?:atp|csp)-[A-Za-z0-9_-]{22,43}|EAAA[A-Za-z0-9_+-]{60})\b"),
    ("terraform_token", r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}"),
    ("vault_token", r"\bhv[sb]\.[A-Za-z0-9_-]{24,}"),
    ("notion_token", r"\b(?:ntn_[0-9]{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43})\b"),
    ("linear_key", r"\blin_api_[A-Za-z0-9]{40}\b"),
    ("doppler_token", r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}"),
    ("databricks_token", r"\bdapi[a-h0-9]{32}(?:-\d)?\b"),
    ("age_secret_key", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
    ("onepassword_token", r"\bops_eyJ[A-Za-z0-9+/=_-]{200,}"),
    ("facebook_token", r"\bEAA[A-Za-z0-9]{90,}"),
    ("instagram_token", r"\bIGQV[A-Za-z0-9_-]{100,}"),
    ("dropbox_token", r"\bsl\.[A-Za-z0-9_-]{130,}"),
    ("supabase_token", r"\b(?:sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_-]{20,})\b"),
    ("planetscale_token", r"\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.\-]{32,64}"),
    ("posthog_key", r"\bph[cx]_[A-Za-z0-9]{43}\b"),
    ("newrelic_key", r"\bNR(?:AK|II|AA)-[A-Z0-9]{27}\b"),
    ("netlify_token", r"\bnfp_[A-Za-z0-9]{36,}\b"),
    ("vercel_token", r"\bvc[pkia]_[A-Za-z0-9]{40,}\b"),
    ("alibaba_key_id", r"\bLTAI[A-Za-z0-9]{12,20}\b"),
    ("akamai_token", r"\bakab-[a-z0-9]{16}-[a-z0-9]{16}\b"),
    ("azure_client_secret", r"\b[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}\b"),
    ("braintree_token", r"\baccess_token\$production\$[a-z0-9]{16}\$[a-f0-9]{32}\b"),
    ("defined_networking_key", r"\bdnkey-[a-z0-9=_-]{26}-[a-z0-9=_-]{52}\b"),
    ("nkey_seed", r"\bS[UNOACPX][A-Z2-7]{56}\b"),
    ("base64_pem", r"\bLS0tLS1CRUdJTi[A-Za-z0-9+/=]{20,}"),
)

# Secrets known by the word before them; only the value group is reported.
PREFIXED_SECRETS: Final[tuple[tuple[str, str], ...]] = (
    # An AWS secret key written after its key id, as people paste the pair into issues
    # ("my key AKIA... / q8Zr3v..."): 40 base64 characters within a few characters.
    (
        "aws_secret_after_key_id",
        r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b[\s\"'`,;:/|=]{1,12}(?:and\s+|secret\s*(?:key)?\s*[:=]?\s*)?"
        r"(?P<value>(?=[A-Za-z0-9/+]*\d)(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    ),
    ("azure_storage_key", r"AccountKey=(?P<value>[A-Za-z0-9+/]{86}==)"),
    ("http_basic_auth", r"\bBasic (?P<value>[A-Za-z0-9+/]{16,}={0,2})"),
    ("http_bearer", r"\bBearer (?P<value>[A-Za-z0-9._~+/-]{20,}=*)"),
    ("ntlm_token", r"\bNTLM (?P<value>[A-Za-z0-9+/]{40,}={0,2})"),
)

# A private key block. An unterminated block (a key split over string literals and cut
# off) still counts up to the last base64 line.
PRIVATE_KEY: Final = (
    r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,12000}?-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:[\s\"'+\\n,;]{1,12}[A-Za-z0-9+/=]{16,}){1,200})"
)

# A value given to a secret-named variable or key: `password = "..."`, `"api_key": "..."`,
# `token: ...`, `--password ...`. Only the value group is reported, if it looks random.
# A bare `pass` names a secret only as the last word (`db_pass`), not `pass_context`.
_SECRET_NAME = (
    r"(?:pass(?:word|wd|phrase)|pass(?![A-Za-z_])|pwd|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|auth[_-]?key|private[_-]?key|client[_-]?secret|credentials?"
    r"|signing[_-]?key)"
)
# Names that hold a secret's metadata, not the secret: `token_type`, `password_field`.
_NOT_A_SECRET_NAME = (
    r"(?![_.\-]?(?:type|name|id|kind|url|uri|path|file|len|length|count|prefix|format|field"
    r"|class|endpoint|header|label|policy|hint|expiry|expires|regex|pattern)\b)"
)
SECRET_ASSIGNMENTS: Final[tuple[tuple[str, str], ...]] = (
    ("quoted", rf"(?i){_SECRET_NAME}{_NOT_A_SECRET_NAME}[\w.\-]*[\"']?\s*(?::=|=>|->|[:=])\s*[rbu]?[\"'`]"
               r"(?P<value>[^\"'`\s]{6,200})[\"'`]"),
    ("config_line", rf"(?im)^[ \t]*(?:export[ \t]+)?[\w.\-]*{_SECRET_NAME}[\w.\-]*[ \t]*[:=][ \t]*"
                    r"(?P<value>[^\s\"'#;,(){}\[\]<>]{8,200})$"),
    ("cli_flag", rf"(?i)--{_SECRET_NAME}[= ](?P<value>[^\s\"'-][^\s\"']{{5,200}})"),
)  # fmt: skip

_PLACEHOLDER_HINTS: Final = (
    "${", "{{", "%(", "<", "os.environ", "getenv", "process.env", "example", "changeme",
    "change_me", "your_", "your-", "xxxx", "****", "...", "placeholder", "dummy", "redacted",
    "none", "null", "undefined", "true", "false", "password", "secret", "token", "required",
)  # fmt: skip


_WORDS = re.compile(r"[a-z]+(?:[-_][a-z]+)+")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?")


def shannon_entropy(value: str) -> float:
    """Bits per character of a string's character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_like_secret(value: str, min_entropy: float = 3.0) -> bool:
    """Whether an assigned value looks like a real secret rather than a name or placeholder.

    Real secrets mix character classes and are not words: `S3cr3t-Passw0rd!` and
    `123456789a1234` pass; `os.environ`, `${DB_PASS}`, `changeme` and `self.token` do not.
    """
    lowered = value.lower()
    if any(hint in lowered for hint in _PLACEHOLDER_HINTS):
        return False
    if _DOTTED_NAME.fullmatch(value):
        return False  # an attribute or module path: `jinja2.pass_context`, `settings.KEY`
    if _WORDS.fullmatch(value):
        return False  # lowercase words: `mime-version`, `invalid_mailbox`
    if value.replace("_", "").replace(".", "").isalpha() and (value.islower() or value.isupper()):
        return False  # an identifier or a constant's name
    classes = sum(
        (any(c.islower() for c in value), any(c.isupper() for c in value),
         any(c.isdigit() for c in value), any(not c.isalnum() for c in value))
    )  # fmt: skip
    return classes >= 2 and shannon_entropy(value) >= min_entropy
