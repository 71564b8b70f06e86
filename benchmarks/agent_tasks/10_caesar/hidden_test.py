from caesar import caesar


def test_shift():
    assert caesar('abc', 1) == 'bcd'
    assert caesar('xyz', 3) == 'abc'
    assert caesar('ABC', 2) == 'CDE'


def test_round_trip():
    assert caesar(caesar('Hello, World', 5), -5) == 'Hello, World'
