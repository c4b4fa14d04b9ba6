"""Settings: ouro.toml and [tool.ouroboros], validated with file, line and key; flags win."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.kernel.settings import SettingsError, load_settings, write_setting


def problems(home: Path, cwd: Path | None = None) -> list[str]:
    with pytest.raises(SettingsError) as e:
        load_settings(home, cwd=cwd or home, env={})
    return [str(p) for p in e.value.problems]


def test_defaults_without_any_file(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, cwd=tmp_path, env={})
    assert loaded.settings.improve.target.repo is None
    assert loaded.settings.improve.writer.kind == "rules"
    assert loaded.settings.schedules.scan == "@weekly"
    assert loaded.files == []


def test_each_bad_value_names_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "ouro.toml").write_text(
        "# settings\n[improve.target]\nbranch = \"a..b\"\n\n[improve.writer]\nkind = \"gpt\"\n"
        "max_attempts = 0\n[schedules]\nscan = \"every 5x\"\n[llm]\nbase_url = \"ftp://x\"\n")
    found = problems(tmp_path)
    f = str(tmp_path / "ouro.toml")
    assert f"{f}:3: improve.target.branch: 'a..b' is not a usable branch name" in found
    assert any(p.startswith(f"{f}:6: improve.writer.kind:") for p in found)
    assert any(p.startswith(f"{f}:7: improve.writer.max_attempts:") for p in found)
    assert any(p.startswith(f"{f}:9: schedules.scan: 'every 5x' is not a schedule") for p in found)
    assert any(p.startswith(f"{f}:11: llm.base_url:") for p in found)


def test_unknown_keys_and_secrets_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ouro.toml").write_text("[improve.forge]\nkind = \"github\"\n"
                                        "repository = \"a/b\"\ntoken = \"ghp_x\"\n"
                                        "[improve]\ntargt = {}\n")
    found = problems(tmp_path)
    assert any(":4: improve.forge.token: secrets never go in a settings file" in p for p in found)
    assert any(":5: improve.targt: unknown setting" in p or "improve.targt" in p for p in found)


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    (tmp_path / "ouro.toml").write_text("[improve]\n\nthis is not toml\n")
    (found,) = problems(tmp_path)
    assert ":3:" in found and "not valid TOML" in found


def test_forge_needs_a_repository(tmp_path: Path) -> None:
    (tmp_path / "ouro.toml").write_text("[improve.forge]\nkind = \"gitlab\"\n")
    (found,) = problems(tmp_path)
    assert "needs repository" in found and ":1:" in found


def test_layers_pyproject_then_file_then_workspace_then_env_then_flags(tmp_path: Path) -> None:
    proj, home = tmp_path / "proj", tmp_path / "home"
    proj.mkdir()
    home.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = \"x\"\n[tool.ouroboros.improve.target]\n"
                                         "branch = \"trunk\"\nremote = \"up\"\n"
                                         "[tool.ouroboros.notify]\nwebhook_url = \"http://a.test\"\n")
    (proj / "ouro.toml").write_text("[improve.target]\nremote = \"mirror\"\n")
    (home / "ouro.toml").write_text("[improve.writer]\nkind = \"llm\"\n")
    loaded = load_settings(home, cwd=proj, env={"OURO_WEBHOOK_URL": "http://b.test"},
                           flags={"improve.writer.kind": ("--writer", "rules"),
                                  "improve.target.push": ("--no-push", None)})
    s = loaded.settings
    assert s.improve.target.branch == "trunk" and s.improve.target.remote == "mirror"
    assert s.notify.webhook_url == "http://b.test" and s.improve.writer.kind == "rules"
    assert loaded.origin(("improve", "target", "branch")) == f"{proj / 'pyproject.toml'}:4"
    assert loaded.origin(("improve", "target", "remote")) == f"{proj / 'ouro.toml'}:2"
    assert loaded.origin(("notify", "webhook_url")) == "env OURO_WEBHOOK_URL"
    assert loaded.origin(("improve", "writer", "kind")) == "--writer"
    assert loaded.origin(("improve", "target", "push")) == "default"


def test_a_bad_flag_is_named_by_its_flag(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(tmp_path, cwd=tmp_path, env={},
                      flags={"improve.writer.kind": ("--writer", "magic")})
    assert e.value.problems[0].file == "--writer"


def test_write_setting_keeps_comments_and_refuses_invalid(tmp_path: Path) -> None:
    path = tmp_path / "ouro.toml"
    path.write_text("# mine\n[llm]\nmodel = \"m\"  # the model\n")
    write_setting(path, ("improve", "target", "repo"), "/srv/repo.git")
    text = path.read_text()
    assert "# mine" in text and "# the model" in text and "/srv/repo.git" in text
    with pytest.raises(SettingsError):
        write_setting(path, ("improve", "target", "branch"), "bad..branch")
    assert path.read_text() == text and not (tmp_path / "ouro.toml.tmp").exists()


def ouro(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, cwd=cwd, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_cli_config_check_and_show(tmp_path: Path) -> None:
    (tmp_path / "ouro.toml").write_text("[improve.monitor]\nwindow_minutes = -5\n")
    bad = ouro("config", "check", "--json", home=tmp_path, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    error = json.loads(bad.stdout)["error"]
    (problem,) = error["details"]["problems"]
    assert problem["key"] == "improve.monitor.window_minutes" and problem["line"] == 2
    (tmp_path / "ouro.toml").write_text("[improve.monitor]\nwindow_minutes = 30\n")
    ok = ouro("config", "check", home=tmp_path, cwd=tmp_path)
    assert ok.returncode == 0 and "ok" in ok.stdout
    shown = json.loads(ouro("config", "show", "--json", home=tmp_path, cwd=tmp_path).stdout)
    assert shown["settings"]["improve"]["monitor"]["window_minutes"] == 30
    assert shown["origins"]["improve.monitor.window_minutes"].endswith("ouro.toml:2")
