"""Hostile Rust tools at build time. This host's rustc has no wasm32-wasip1 standard library,
so a clean Rust tool is refused as `ToolchainMissing`; the source check runs before any
toolchain is looked for, so these attacks are refused by it, with their own message, here and
on a host that can build Rust (where rustc would then run in the jail)."""

from __future__ import annotations

import pytest

from .conftest import Ward, spec

MAIN = 'fn main() { println!("{}", DATA.len()); }\n'


@pytest.mark.parametrize(
    ("decl", "match"),
    [
        ('static DATA: &[u8] = include_bytes!("{key}");', r"include_bytes! names an absolute"),
        ('static DATA: &str = include_str!("../tests/cases.json");',
         r"include_str! names a path outside"),
        ('static DATA: &str = include_str!(r#"{key}"#);', r"include_str! names an absolute"),
        ('include!(concat!(env!("HOME"), "/.cargo/credentials"));\nstatic DATA: &str = "";',
         r"env! \(the build's environment"),
        ('static DATA: &str = match option_env!("OURO_KEY_PASSPHRASE") '
         '{{ Some(s) => s, None => "" }};', r"option_env!"),
        ('static DATA: &[u8] = include_bytes!(concat!("/etc", "/passwd"));',
         r"include_bytes! does not name a literal path"),
        ('#[path = "{key}"]\nmod key;\nstatic DATA: &str = "";', r"#\[path\] names an absolute"),
        ('std::arch::global_asm!(".incbin \\"{key}\\"");\nstatic DATA: &str = "";',
         r"\.incbin"),
        ('/* a /* nested */ comment */ static DATA: &[u8] = include_bytes!("{key}");',
         r"include_bytes! names an absolute"),
        ('static DATA: &[u8] = include_bytes! ["{key}"];', r"include_bytes! names an absolute"),
    ],
    ids=["include-bytes-abs", "include-str-hidden-tests", "raw-string", "env", "option-env",
         "concat", "path-attr", "global-asm-incbin", "nested-comment", "brackets"],
)
def test_rust_source_reaching_outside_the_tool_is_refused(ward: Ward, decl: str,
                                                         match: str) -> None:
    source = decl.format(key=ward.key_path) + "\n" + MAIN
    ward.refuses_spec(spec("rust", source), "build", match)


def test_a_module_file_of_the_tool_is_checked_too(ward: Ward) -> None:
    evil = f'pub static KEY: &[u8] = include_bytes!("{ward.key_path}");\n'.encode()
    source = "mod util;\nstatic DATA: &[u8] = util::KEY;\n" + MAIN
    ward.refuses_spec(spec("rust", source, extra={"src/util.rs": evil}), "build",
                      r"src/util\.rs:1: include_bytes! names an absolute")


def test_a_clean_rust_tool_without_the_wasm_target_stores_nothing(ward: Ward) -> None:
    from ouroboros.capabilities.skills.builders import rust_target

    if rust_target() is not None:
        pytest.skip("this host builds Rust: the refusal below does not apply")
    ward.refuses_spec(spec("rust", 'fn main() { println!("1"); }\n'), "build",
                      r"rustup target add wasm32-wasip1")
