from palindrome import is_palindrome


def test_sentence():
    assert is_palindrome('A man, a plan, a canal: Panama') is True


def test_not():
    assert is_palindrome('hello') is False


def test_empty_and_digits():
    assert is_palindrome('') is True
    assert is_palindrome('12 21') is True
