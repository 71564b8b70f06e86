import pytest
from duration import parse_duration


def test_values():
    assert parse_duration('1h30m') == 5400
    assert parse_duration('45s') == 45
    assert parse_duration('1h2m3s') == 3723


def test_invalid():
    for bad in ('abc', '', '10x'):
        with pytest.raises(ValueError):
            parse_duration(bad)
