from slug import slugify


def test_slugify():
    assert slugify('Hello, World!') == 'hello-world'
    assert slugify('  Many   spaces ') == 'many-spaces'


def test_nothing_left():
    assert slugify('---') == ''


def test_digits():
    assert slugify('Release 2.0') == 'release-2-0'
