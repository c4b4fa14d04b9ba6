"""Deployment policy tests: forbidden targets for any proposal."""


def test_contract_exists() -> None:
    with open("SYSTEM_CONTRACT.md", encoding="utf-8") as fh:
        assert "System contract" in fh.read()
