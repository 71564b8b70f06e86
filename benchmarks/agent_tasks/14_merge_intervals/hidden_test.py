from intervals import merge


def test_merge():
    assert merge([(1, 3), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]
    assert merge([(8, 10), (1, 3)]) == [(1, 3), (8, 10)]


def test_touching():
    assert merge([(1, 4), (4, 5)]) == [(1, 5)]


def test_empty():
    assert merge([]) == []
