from brackets import balanced


def test_balanced():
    assert balanced('{[()]}') is True
    assert balanced('a(b)c') is True
    assert balanced('') is True


def test_unbalanced():
    assert balanced('([)]') is False
    assert balanced('((') is False
    assert balanced(')(') is False
