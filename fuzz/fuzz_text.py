"""URL extraction, text folding and text diffs (kernel/urls.py, kernel/textfold.py,
kernel/textdiff.py).

The first byte picks the target. Invariant: ``urls_in_text`` and ``parse`` never raise
and give ASCII hosts; folding never raises, is idempotent and leaves no format
characters; for two texts, ``make_diff`` applies to the first giving the second, the
inverse diff restores the first, and ``apply_diff`` of arbitrary text raises only
``InvalidPatch``.
"""

from __future__ import annotations

import contextlib
import unicodedata

from _harness import fuzz, instrumented

with instrumented(__name__):
    from ouroboros.kernel.errors import InvalidPatch
    from ouroboros.kernel.textdiff import apply_diff, make_diff
    from ouroboros.kernel.textfold import compact, fold, fold_dense, skeleton, visible
    from ouroboros.kernel.urls import parse, urls_in_text

SEP = "\x00"


def seeds() -> list[bytes]:
    return ["\x00see https://ex\u0430mple.com/a?b=c#d and hxxp://x[.]y and mailto:a@b.org".encode(),
            "\x00ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ and http://[::1]:80/ www.x.co.uk".encode(),
            "\x01Ⓟⓐⓨ p\u200bal.com ﬁle Ｓｅｃｒｅｔ".encode(),
            b"\x02a\nb\nc\n\x00a\nB\nc\nd",
            b"\x02no newline\x00no newline\nnow",
            b"\x03@@ -1,2 +1,2 @@\n a\n-b\n+c\n\x00a\nb\n"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def test_one(data: bytes) -> None:
    if not data:
        return
    mode, text = data[0] % 4, _text(data[1:])
    if mode == 0:
        for ref in urls_in_text(text):
            assert ref.host.isascii(), ref
        parse(text)
        parse(text, base="https://example.com/a/")
    elif mode == 1:
        once = fold(text)
        assert fold(once) == once, (text, once)
        assert not any(unicodedata.category(c) in ("Cf", "Cs") for c in once), once
        compact(text)
        fold_dense(text)
        skeleton(text)
        visible(text)
    elif mode == 2:
        old, _, new = text.partition(SEP)
        forward = make_diff(old, new)
        assert apply_diff(old, forward) == new, (old, new, forward)
        assert apply_diff(new, make_diff(new, old)) == old, (old, new)
    else:
        diff, _, old = text.partition(SEP)
        with contextlib.suppress(InvalidPatch):
            apply_diff(old, diff)


if __name__ == "__main__":
    fuzz(test_one)
