"""CSV files staged in parts for an import too large for one request (docs/api.md, CSV import)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, UtcDateTime


class CsvUploadPart(Base):
    __tablename__ = "csv_upload_part"

    upload_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    part_number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text)
    # The user who sent the parts: only they may add to the upload or import it.
    owner: Mapped[str] = mapped_column(sa.Text)
    # Parts older than a day are deleted (csv_import.EXPIRY).
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
