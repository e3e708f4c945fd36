"""The alerts feed's SSE event ids: next offset per partition, sent back as Last-Event-ID to resume."""

from __future__ import annotations

import pytest

from streams.web.alerts_feed import format_positions, parse_positions


def test_positions_round_trip() -> None:
    assert format_positions({3: 9, 0: 41}) == "0:41,3:9"
    assert parse_positions(format_positions({3: 9, 0: 41})) == {0: 41, 3: 9}
    assert parse_positions("") == {}
    assert parse_positions(" 1:2 , ") == {1: 2}


@pytest.mark.parametrize("bad", ["0:1,x", "a:1", "0:-1", "0", "1:2:3"])
def test_bad_positions_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="is not <partition>:<offset>"):
        parse_positions(bad)


def test_overlong_header_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_positions("0:1," * 2000)
