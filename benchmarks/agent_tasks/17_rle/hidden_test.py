from rle import decode, encode


def test_encode():
    assert encode('aaabcc') == '3a1b2c'
    assert encode('') == ''


def test_decode():
    assert decode('3a1b2c') == 'aaabcc'
    assert decode('12x') == 'x' * 12


def test_round_trip():
    assert decode(encode('zzzzzzzzzzzzy')) == 'zzzzzzzzzzzzy'
