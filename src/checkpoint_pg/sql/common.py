"""What both backends' SQL modules share: quoted table names and row shapes."""

from __future__ import annotations

import sqlalchemy as sa

from checkpoint_pg.schema import Tables


class Names:
    """Quoted, schema-qualified table names for one dialect."""

    def __init__(self, tables: Tables, dialect: sa.Dialect) -> None:
        fmt = dialect.identifier_preparer.format_table
        self.threads = fmt(tables.threads)
        self.checkpoints = fmt(tables.checkpoints)
        self.values = fmt(tables.channel_values)
        self.writes = fmt(tables.writes)
        self.objects = fmt(tables.objects)
        self.version_table = tables.version_table


# Column lists shared by the SELECTs of both backends, in the order the core reads them.
CHECKPOINT_COLS = "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata"
VALUE_COLS = "channel, version, kind, base_version, root_version, refs"
WRITE_COLS = "checkpoint_id, task_id, idx, channel, task_path, kind, refs"
