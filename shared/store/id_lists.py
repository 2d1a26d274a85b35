"""Lists of tenant ids stored as comma-joined properties (a GUID list is the walk's and the held
change's payload). 800 GUIDs (29,600 characters) fit one 32K-character string property."""

from __future__ import annotations

from typing import Mapping, Sequence

IDS_PER_PROPERTY = 800
_PROPERTY = "TenantIds"


def pack_ids(tenant_ids: Sequence[str]) -> dict[str, object]:
    """Properties holding ``tenant_ids``: ``TenantIds``, ``TenantIds1``, ... and ``Count``."""
    properties: dict[str, object] = {"Count": len(tenant_ids)}
    for index, start in enumerate(range(0, len(tenant_ids), IDS_PER_PROPERTY)):
        name = _PROPERTY if index == 0 else f"{_PROPERTY}{index}"
        properties[name] = ",".join(tenant_ids[start : start + IDS_PER_PROPERTY])
    return properties


def unpack_ids(entity: Mapping[str, object]) -> list[str]:
    """The tenant ids :func:`pack_ids` stored in ``entity``, in order."""
    ids: list[str] = []
    index = 0
    while True:
        text = entity.get(_PROPERTY if index == 0 else f"{_PROPERTY}{index}")
        if not text:
            return ids
        ids.extend(str(text).split(","))
        index += 1
