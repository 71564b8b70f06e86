from primes import is_prime


def test_primes():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]


def test_composites():
    assert is_prime(91) is False
    assert is_prime(7919) is True


def test_small():
    assert is_prime(1) is False
    assert is_prime(-7) is False
