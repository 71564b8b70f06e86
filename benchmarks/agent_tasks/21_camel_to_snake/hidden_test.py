from case import camel_to_snake


def test_simple():
    assert camel_to_snake('CamelCase') == 'camel_case'
    assert camel_to_snake('already_snake') == 'already_snake'


def test_acronym():
    assert camel_to_snake('parseHTTPResponse') == 'parse_http_response'
