"""Password hashing with argon2id — one hasher for login, user commands and imports.

OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane) takes about 40 ms here, where the
library default (64 MiB, 3 passes, 4 lanes) takes 330 ms on a 2-core server and a login
storm would queue behind it. Stored hashes carry their parameters, so raising these
later only affects new hashes.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying unknown usernames against this costs the same time as a real check, so
# response time does not reveal which usernames exist.
DUMMY_HASH = _hasher.hash("xietong-no-such-user")
