"""What every published table promises dashboards: a schema version, units, null for missing.

`SCHEMA_VERSION` counts layouts of the output tables (docs/OUTPUTS.md). Version 1
was the first layout (missing numbers written as NaN, no version recorded);
version 2 writes null for every missing number, records the version in the
`runs` table and in each Parquet file's key-value metadata, and adds unit
columns. A version only grows: columns may be added, never renamed, removed
or retyped (tests/outputs/test_schema.py pins them).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = 2
METADATA_KEY = b"pivotal.schema_version"

# the unit of each summary metric; capacity and spent take the scenario's labels
METRIC_UNITS = {"size": "states", "capacity": None, "spent": None, "success": "probability",
                "time_to_success": "days", "offers": "offers", "venue_joins": "joins",
                "withdrawals": "withdrawals"}


def null_for_nan(table: pa.Table) -> pa.Table:
    """The same table with every NaN of a floating-point column replaced by null."""
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type) and column.null_count < len(column):
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


def finalize(table: pa.Table) -> pa.Table:
    """A table as it is published: NaN written as null, the schema version in its metadata."""
    table = null_for_nan(table)
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = str(SCHEMA_VERSION).encode()
    return table.replace_schema_metadata(metadata)
