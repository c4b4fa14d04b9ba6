"""Secrets in the user's repository never reach the WriterAgent's LLM: the files it is shown
go through the sanitizer's secret rules (placeholders, the rest byte for byte) and a fence.
The LLM is the local OpenAI-compatible server; what it received is read from its log."""

from __future__ import annotations

import base64
import json

import pytest

from llm.hostile import HostileLLM
from ouroboros.capabilities.improve.intake.secret_scrub import scrub_secrets

from .fakeforge import git
from .ownrepo import SERVICE, World, answer, good_diff, timeout_finding

GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIAIOSFODNN7EXAMPLE"
HIDDEN = base64.b64encode(("ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2").encode()).decode()
SECRETS = {
    "github token in a comment": (f"# deploy with {GITHUB}\n", GITHUB),
    "key-named value": ('api_key: "s3cr3t-Value-9f8e7d6c5b4a"\n', "s3cr3t-Value-9f8e7d6c5b4a"),
    "password in a URL": ("# mirror: https://deploy:Hunter2-Pass@git.example.com/x.git\n",
                          "Hunter2-Pass"),
    "zero-width split AWS key": (f"# aws: {AWS[:4]}\u200b{AWS[4:]}\n", AWS),
    "base64-hidden token": (f"# blob: {HIDDEN}\n", HIDDEN),
    "env-style assignment": ("DB_PASSWORD=correct-horse-battery\n", "correct-horse-battery"),
    "private key": ("# -----BEGIN OPENSSH PRIVATE KEY-----\n# b3BlbnNzaC1rZXktdjEAAAAABG5v"
                    "bmUAAAAEbm9uZQ\n# -----END OPENSSH PRIVATE KEY-----\n",
                    "b3BlbnNzaC1rZXktdjEAAAAABG5v"),
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_form_is_replaced(name: str) -> None:
    text, secret = SECRETS[name]
    out, n = scrub_secrets(SERVICE + text)
    assert secret not in out and secret not in out.replace("\u200b", "") and n >= 1, out
    assert out.startswith(SERVICE) and "<secret:" in out


def test_what_is_not_a_secret_stays_byte_for_byte() -> None:
    code = ("token = get_token()\nkey = self.settings.api_key\npassword_length: 12\n"
            "api_key: ${API_KEY}\nsecret: none\ntimeout_s: 10\nauthor: alice\n"
            "sha: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
            "url: https://example.com/a/b?c=d\n# tokens: 500 per minute\n")
    assert scrub_secrets(code) == (code, 0)
    assert scrub_secrets(SERVICE) == (SERVICE, 0)


def test_no_secret_in_a_target_file_reaches_the_llm(world: World, hostile: HostileLLM) -> None:
    w = world
    checkout = w.loop.repo.path
    service = checkout / "config" / "service.yaml"
    service.write_text(SERVICE + "".join(text for text, _ in SECRETS.values()))
    # a file name is shown too: one that carries a secret is cleaned as well
    (checkout / "config" / f"{GITHUB}.yaml").write_text("tools: {}\n")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "secrets, carelessly")
    git(checkout, "push", "-q", "origin", "main")
    hostile.replies = [answer(good_diff())]

    w.loop.propose_report([timeout_finding()])

    assert hostile.requests, "the writer never called the LLM"
    sent = "\n".join(json.dumps(r["body"], ensure_ascii=False) for r in hostile.requests)
    for name, (_, secret) in SECRETS.items():
        assert secret not in sent, name
    assert "timeout_s: 10" in sent and "<secret:" in sent  # the file itself is still there
    assert "never write them back" in sent
