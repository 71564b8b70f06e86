import pytest
from to_roman import int_to_roman


def test_values():
    assert int_to_roman(1994) == 'MCMXCIV'
    assert int_to_roman(4) == 'IV'
    assert int_to_roman(3999) == 'MMMCMXCIX'


def test_range():
    with pytest.raises(ValueError):
        int_to_roman(0)
    with pytest.raises(ValueError):
        int_to_roman(4000)
