from anagrams import group_anagrams


def test_groups():
    words = ['eat', 'tea', 'tan', 'ate', 'nat', 'bat']
    assert group_anagrams(words) == [['eat', 'tea', 'ate'], ['tan', 'nat'], ['bat']]


def test_empty():
    assert group_anagrams([]) == []
