import pytest

from ivr_engine.domain.pin import check_pin_format, hash_pin, verify_pin
from ivr_engine.errors import ConfigError


def test_hash_is_salted_and_verifies() -> None:
    a, b = hash_pin("4321"), hash_pin("4321")
    assert a != b and "4321" not in a
    assert a.startswith("scrypt$16384$8$1$")
    assert verify_pin("4321", a) and verify_pin("4321", b)
    assert not verify_pin("4322", a)
    assert not verify_pin("", a)


@pytest.mark.parametrize("bad", ["", "123", "123456789", "12a4", "12 34", "١٢٣٤"])
def test_pin_format(bad: str) -> None:
    with pytest.raises(ValueError, match="4 to 8 digits"):
        check_pin_format(bad)


def test_corrupt_hash_is_an_error_not_a_wrong_pin() -> None:
    with pytest.raises(ConfigError):
        verify_pin("1234", "md5$abc")
