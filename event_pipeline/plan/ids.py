"""Reserving database ids before the write transaction.

Each model asset must output its final id map (source id -> database id)
before anything is written, and a re-execution from failure must be able to
reuse those maps. So new ids are reserved in blocks, in short transactions
of their own, like a sequence: an id reserved by a failed import is a gap,
never reused, never a conflict. Rows inserted by other tools are respected:
a block always starts above the table's current maximum id.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from event_pipeline.model.schema import id_blocks, metadata


def reserve_ids(engine: Engine, table_name: str, count: int) -> range:
    """Reserve ``count`` fresh ids for ``table_name``; safe under concurrency."""
    if count <= 0:
        return range(0)
    table = metadata.tables[table_name]
    for _attempt in range(5):
        try:
            with engine.begin() as conn:
                # The UPDATE takes the row lock (PostgreSQL) or the write lock
                # (SQLite) before we read, so two imports never get one block.
                updated = conn.execute(
                    id_blocks.update()
                    .where(id_blocks.c.table_name == table_name)
                    .values(next_id=id_blocks.c.next_id + count)
                ).rowcount
                max_id = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
                if not updated:
                    start = max_id + 1
                    conn.execute(id_blocks.insert().values(table_name=table_name, next_id=start + count))
                    return range(start, start + count)
                start = (
                    conn.execute(
                        sa.select(id_blocks.c.next_id).where(id_blocks.c.table_name == table_name)
                    ).scalar_one()
                    - count
                )
                if start <= max_id:
                    start = max_id + 1
                    conn.execute(
                        id_blocks.update().where(id_blocks.c.table_name == table_name).values(next_id=start + count)
                    )
                return range(start, start + count)
        except IntegrityError:
            continue  # another import created the counter row first; take the update path
    raise RuntimeError(f"could not reserve ids for {table_name}")
