"""The platform's secret keys: generated once by ``xietong init``, kept in the data dir.

- ``signing.pem``: Ed25519 private key signing audit tree heads and result documents.
- ``encryption.key``: 32 random bytes, AES-256-GCM for personal data at rest.
- ``session.key``: 32 random bytes signing web sessions and bearer tokens.

Files are created with mode 0600 and never overwritten: losing the encryption key
loses every encrypted 身份证号, so generation refuses to replace an existing key.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xietong.kernel.errors import XietongError

SIGNING_FILE = "signing.pem"
ENCRYPTION_FILE = "encryption.key"
SESSION_FILE = "session.key"


class KeysMissing(XietongError):
    status = 500
    code = "keys_missing"


def _write_secret(path: Path, data: bytes) -> None:
    # O_EXCL: never clobber a key that exists; mode 0600 from the first byte on disk.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def ensure_keys(keys_dir: Path) -> list[str]:
    """Create whichever keys are missing; returns the names of the files created."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    created: list[str] = []
    if not (keys_dir / SIGNING_FILE).exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_secret(keys_dir / SIGNING_FILE, pem)
        created.append(SIGNING_FILE)
    for name in (ENCRYPTION_FILE, SESSION_FILE):
        if not (keys_dir / name).exists():
            _write_secret(keys_dir / name, base64.b64encode(secrets.token_bytes(32)) + b"\n")
            created.append(name)
    return created


@dataclass(frozen=True)
class Keys:
    signing: Ed25519PrivateKey
    encryption: bytes
    session: bytes

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing.public_key()

    @property
    def public_key_raw(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, data: bytes) -> bytes:
        return self.signing.sign(data)

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        """AES-256-GCM; the 12-byte nonce travels in front of the ciphertext."""
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self.encryption).encrypt(nonce, plaintext, associated)

    def decrypt(self, blob: bytes, associated: bytes = b"") -> bytes:
        return AESGCM(self.encryption).decrypt(blob[:12], blob[12:], associated)

    @classmethod
    def load(cls, keys_dir: Path) -> Keys:
        try:
            pem = (keys_dir / SIGNING_FILE).read_bytes()
            encryption = base64.b64decode((keys_dir / ENCRYPTION_FILE).read_bytes())
            session = base64.b64decode((keys_dir / SESSION_FILE).read_bytes())
        except FileNotFoundError as missing:
            raise KeysMissing(
                f"密钥文件缺失：{missing.filename}，请先运行 xietong init",
                f"Key file missing: {missing.filename}; run `xietong init` first",
            ) from missing
        signing = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(signing, Ed25519PrivateKey):
            raise KeysMissing("签名密钥不是 Ed25519 密钥", "signing key is not an Ed25519 key")
        return cls(signing=signing, encryption=encryption, session=session)
