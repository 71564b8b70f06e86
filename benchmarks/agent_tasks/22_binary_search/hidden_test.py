from search import binary_search


def test_found():
    assert binary_search([1, 3, 5, 7], 5) == 2
    assert binary_search([1, 3, 5, 7], 1) == 0
    assert binary_search([1, 3, 5, 7], 7) == 3


def test_missing():
    assert binary_search([1, 3, 5, 7], 4) == -1
    assert binary_search([], 1) == -1
