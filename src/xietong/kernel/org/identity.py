"""Identity numbers and contact data: validation, normalisation and masking.

身份证号 (resident identity card number) is checked with ``stdnum.cn.ric`` — length,
check digit, birth date and the GB/T 2260 place of birth — and 统一社会信用代码 with
``stdnum.cn.uscc``. Values are normalised (spaces and dashes removed, a trailing ``x``
upper-cased) so one person or enterprise has exactly one stored form; that matters
because person lookups go through a keyed digest of the normalised number.

Masking keeps what a clerk needs to recognise a record and hides the rest (脱敏):
``430102********1234``, ``138****5678``, ``张*三``.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from xietong.kernel import clock
from xietong.kernel.errors import InvalidInput

MOBILE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = re.compile(r"[\s\-]+")


def normalize_id_number(value: str) -> str:
    """The canonical 18-character 身份证号, or ``InvalidInput(code="invalid_id_number")``."""
    try:
        number = ric.validate(value or "")
    except ValidationError as bad:
        raise _invalid_id_number(value, bad) from bad
    # stdnum accepts any past or future date; nobody alive was born tomorrow.
    if ric.get_birth_date(number) > clock.local_now().date():
        raise _invalid_id_number(value, None)
    return number


def _invalid_id_number(value: str, bad: ValidationError | None) -> InvalidInput:
    reason = type(bad).__name__ if bad else "FutureBirthDate"
    return InvalidInput(
        "身份证号无效，请核对位数、出生日期和校验位",
        "Invalid resident ID number: check its length, birth date and check digit",
        code="invalid_id_number",
        details={"masked": mask_id_number(str(value or "")), "reason": reason},
    )


def is_valid_id_number(value: str) -> bool:
    try:
        normalize_id_number(value)
    except InvalidInput:
        return False
    return True


def normalize_uscc(value: str) -> str:
    """The canonical 18-character 统一社会信用代码, or ``InvalidInput(code="invalid_uscc")``."""
    try:
        return uscc.validate(value or "")
    except ValidationError as bad:
        raise InvalidInput(
            "统一社会信用代码无效，请核对位数和校验位",
            "Invalid unified social credit code: check its length and check character",
            code="invalid_uscc",
            details={"value": str(value or "")[:40], "reason": type(bad).__name__},
        ) from bad


def normalize_mobile(value: str) -> str:
    """An 11-digit mainland mobile number; spaces, dashes and a +86 prefix are dropped."""
    compact = _SEPARATORS.sub("", str(value or ""))
    for prefix in ("+86", "0086"):
        if compact.startswith(prefix):
            compact = compact[len(prefix) :]
    if not MOBILE.fullmatch(compact):
        raise InvalidInput(
            "手机号无效，应为 1 开头的 11 位数字",
            "Invalid mobile number: 11 digits starting with 1",
            code="invalid_mobile",
        )
    return compact


def mask_id_number(number: str) -> str:
    """First 6 (the region) and last 4 characters visible: ``430102********1234``."""
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_mobile(number: str) -> str:
    """``138****5678``: carrier prefix and last four digits visible."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_name(name: str) -> str:
    """``张*`` for two characters, ``张*三`` / ``欧**明`` for longer names."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def lookup_digest(encryption_key: bytes, number: str) -> str:
    """Keyed digest of a normalised 身份证号, for equality lookups without decrypting.

    A plain hash would be worthless: the space of valid numbers is small enough to
    enumerate. The HMAC key is derived from the encryption key with its own label, so
    the lookup key is never used for encryption and vice versa.
    """
    lookup_key = hashlib.sha256(b"xietong.person.lookup" + encryption_key).digest()
    return hmac.new(lookup_key, number.encode("ascii"), hashlib.sha256).hexdigest()
