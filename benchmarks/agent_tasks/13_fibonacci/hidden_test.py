import pytest
from fib import fibonacci


def test_seq():
    assert fibonacci(7) == [0, 1, 1, 2, 3, 5, 8]
    assert fibonacci(1) == [0]


def test_zero():
    assert fibonacci(0) == []


def test_negative():
    with pytest.raises(ValueError):
        fibonacci(-1)
