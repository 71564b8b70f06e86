from dedupe import dedupe


def test_dedupe():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert dedupe(['a', 'b', 'a']) == ['a', 'b']


def test_empty():
    assert dedupe([]) == []
