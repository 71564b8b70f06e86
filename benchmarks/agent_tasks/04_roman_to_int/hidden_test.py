import pytest
from roman import roman_to_int


def test_values():
    assert roman_to_int('MCMXCIV') == 1994
    assert roman_to_int('III') == 3
    assert roman_to_int('XLII') == 42


def test_invalid():
    with pytest.raises(ValueError):
        roman_to_int('ABC')
