"""Scrubbing: known secrets and secret-shaped text never survive, also when a stream is cut into
pieces at the places the runner cuts it."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from runner.scrub import CUT_WINDOW, REDACTED, SEPARATORS, Scrubber, safe_cut

TOKEN = "fb_01JSECRETSECRETSECRETSECR"
SIG = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%2B%2FAb%3D"


def test_known_values_and_secret_shapes_are_redacted() -> None:
    scrubber = Scrubber([TOKEN, SIG, "short"])
    text = (
        f"token {TOKEN} url https://a.blob/x?sv=1&sig={SIG}&se=2 other "
        "https://b/y?sig=ZZZZZZZZZZZZZZZZZZZZ&x=1 Authorization: Bearer abcdefghijkl "
        "sk-ant-api03-abcdefgh fb_01JOTHERTOKENOFSOMEONE short\n"
    ).encode()
    out = scrubber.scrub(text)
    for secret in (TOKEN, SIG, "ZZZZZZZZZZZZZZZZZZZZ", "abcdefghijkl", "api03", "OTHERTOKEN"):
        assert secret.encode() not in out
    assert b"short" in out  # too short to be a secret: left alone
    assert b"sv=1&sig=[redacted]&se=2" in out
    assert out.endswith(b"\n")


def test_source_scrubbing_only_touches_known_values() -> None:
    scrubber = Scrubber([TOKEN])
    code = f'headers = {{"Authorization": f"Bearer {{token}}"}}  # {TOKEN}\n'.encode()
    out = scrubber.scrub_literals(code)
    assert out == code.replace(TOKEN.encode(), REDACTED)


def test_safe_cut_never_splits_a_run_it_could_keep_whole() -> None:
    assert safe_cut(b"abc&def", 100) == 4  # after the separator: "def" may still grow
    assert safe_cut(b"Bearer abc", 100) == 0  # a space is no separator: a bearer spans one
    assert safe_cut(b"abcdef", 100) == 0  # nothing safe yet: wait
    assert safe_cut(b"x" * (CUT_WINDOW + 10), CUT_WINDOW + 10) == 10  # hold back one window
    assert safe_cut(b"y" * 100, 50) == 50  # too long for one piece: cut at the limit


_pieces = st.lists(
    st.sampled_from(["a", "bc", " ", "\n", "&", "sig=", "Bearer ", TOKEN, SIG, "fb_", "x" * 7]),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_pieces, st.integers(min_value=1, max_value=200))
def test_scrubbing_pieces_cut_safely_equals_scrubbing_the_whole(parts, limit) -> None:
    """Holds whenever no run of non-separator bytes is longer than a piece may be (in the runner
    a piece is 3 MiB; shorter limits here make the cutting happen often)."""
    scrubber = Scrubber([TOKEN, SIG])
    data = "".join(parts).encode()
    runs = re.split(b"[" + re.escape(bytes(sorted(SEPARATORS))) + b"]", data)
    assume(all(len(run) < limit for run in runs))
    out, rest = b"", data
    while rest:
        cut = safe_cut(rest, limit)
        if cut == 0:  # the runner waits for more; at the end it sends the rest whole
            cut = len(rest)
        assert cut <= limit or cut == len(rest)
        out += scrubber.scrub(rest[:cut])
        rest = rest[cut:]
    assert out == scrubber.scrub(data)
    assert TOKEN.encode() not in out
    assert SIG.encode() not in out
