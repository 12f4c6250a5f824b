from __future__ import annotations

from pydantic import BaseModel, Field


class PersonDeletionRead(BaseModel):
    distinct_ids: list[str] = Field(description="Every distinct id of the person that was deleted.")
    events_deleted: int
