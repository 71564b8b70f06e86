from flatten import flatten


def test_deep():
    assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]


def test_empty():
    assert flatten([]) == []
    assert flatten([[], [[]]]) == []


def test_strings_and_tuples():
    assert flatten(['ab', ['cd'], (1, 2)]) == ['ab', 'cd', (1, 2)]
