"""The metadata of each upload; the bytes are a content-addressed blob (``storage``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class StoredFile(Base):
    """One upload: who sent which bytes under which name. Two uploads of the same bytes
    are two rows sharing one blob, because who uploaded decides who may attach it."""

    __tablename__ = "file_object"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    uploaded_by: Mapped[str] = mapped_column(String(120), index=True)  # the actor's label
    created_at: Mapped[datetime]
