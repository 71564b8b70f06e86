import pytest
from prices import parse_price


def test_values():
    assert parse_price('$1,234.50') == 1234.5
    assert parse_price('€3.10') == 3.1


def test_invalid():
    with pytest.raises(ValueError):
        parse_price('free')
