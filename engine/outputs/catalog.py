"""`pivotal catalog`: a DuckDB file of views over a forecast directory, for dashboards.

The views read the Parquet files at query time, so the catalog only needs
rebuilding when a new *table* appears (a first study or backtest), not after
every run. It holds (docs/OUTPUTS.md, "The DuckDB catalog"):

- `runs_complete`: runs whose `runs` row says complete.
- `<table>` for every published table: its rows of complete runs only, with
  NaN (possible in files written before schema version 2) read as null.
- `latest_scenario_runs`: for each scenario (its id, the file's name, and its
  name, which tells a study's or an ablation's `base`, `variant-k` and
  `row-r` of different scenarios apart), its latest complete run.
- `latest_<table>`: for every table, the rows of those latest runs (tables
  without a scenario: the latest complete run that has rows in the table).
- `summary_wide` and `latest_summary_wide`: one row per run and scenario, one
  column per metric statistic, with the scenario's units.
- `capacity_distribution_shared`: capacity re-binned on one grid per run, so
  the scenarios of a run can be overlaid.

The file is built under a temporary name and renamed into place, so a
dashboard never opens a half-built catalog.
"""
from __future__ import annotations

import glob
import os
import re
import stat
from pathlib import Path

import duckdb

from engine.outputs.storage import PART, Location, StorageError, locate
from engine.outputs.tables import METRICS

CATALOG = "forecasts.duckdb"
STATISTICS = ("n", "mean", "sd", "se", "p05", "p25", "p50", "p75", "p95", "min", "max")
SHARED_BINS = 64


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_catalog(out, file=None) -> str:
    """Write the catalog of forecast directory `out`; return where it was written.

    Local directories get `out/forecasts.duckdb` unless `file` says otherwise. For
    object storage `file` is a local path (default ./forecasts.duckdb) and DuckDB's
    httpfs extension must be installed to read the files."""
    location = locate(out)
    tables = location.table_names()
    if "runs" not in tables:
        raise StorageError(f"no published run in {location.uri}: nothing to catalog")
    target = Path(file) if file else (Path(location.root) / CATALOG if location.local else Path(CATALOG))
    named = f"--file {target}" if file else f"the catalog {target}"
    _check_replaceable(target, named)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target)
    building = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _remove(building)
    try:
        try:
            con = duckdb.connect()
            with con:
                try:  # the storage format DuckDB 1.x reads too (docs/OUTPUTS.md: which DuckDB)
                    con.execute(f"ATTACH {_quote(str(building))} AS catalog (STORAGE_VERSION 'v1.0.0')")
                except duckdb.Error as exc:  # no such directory, not allowed: a wrong path (exit 2)
                    raise StorageError(f"{named}: the catalog cannot be written there "
                                       f"({str(exc).splitlines()[0]})") from None
                con.execute("USE catalog")
                if not location.local:
                    _load_httpfs(con, location)
                _create_views(con, location, tables)
                _suite_views(con, location)
                con.execute("USE memory")
                con.execute("DETACH catalog")
        except duckdb.IOException as exc:  # a full or read-only disk: the environment (exit 3)
            raise OSError(f"{named}: the catalog cannot be written ({str(exc).splitlines()[0]})") from None
        _remove(target.with_name(target.name + ".wal"))  # a stale log would be replayed into the new file
        os.replace(building, target)
    finally:
        _remove(building)
    return str(target)


def _remove(path: Path) -> None:
    """Remove a database file and its write-ahead log, if there."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def _remove_orphans(target: Path) -> None:
    """Remove the temporary files of catalog builds whose process is gone (killed midway)."""
    for p in target.parent.glob(f".{glob.escape(target.name)}.*.tmp*"):
        pid = p.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_replaceable(target: Path, named: str) -> None:
    """The catalog replaces only a regular file (or is written to a new path): never a
    directory, a FIFO, a device node or a symbolic link that happens to be at the path."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a file")
        raise StorageError(f"{named}: {kind}, not a regular file; the catalog replaces only "
                           "a regular file: give a new path or a catalog file")


def _load_httpfs(con, location: Location) -> None:
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error as exc:
        raise StorageError(f"a catalog over {location.uri} needs DuckDB's httpfs extension, which "
                           f"could not be loaded ({exc}); run `INSTALL httpfs` in DuckDB once on a "
                           "machine with internet access, or catalog a local copy") from None


def glob_escape(path: str) -> str:
    """`path` as a DuckDB glob that matches only itself: '*', '?' and '[' in a directory name
    (--out 'runs[2]' or 'a*b') are literal."""
    return re.sub(r"([\[*?])", r"[\1]", path)


def _glob(location: Location, table: str) -> str:
    prefix = "" if location.local else location.uri.split("://", 1)[0] + "://"
    return f"{prefix}{glob_escape(location.path(table))}/run_id=*/{PART}"


# A run's `runs` file is renamed into place last and its modification time then set to the moment
# after (engine/outputs/directory.py). A run counts in a query only if that time is before the
# query's start (its transaction's): every file of such a run was in place before any of the
# query's globs was expanded, so every view and join of one query sees the same complete runs.
# DuckDB 1.1 reads the time to the second, later versions to the microsecond: the bound is the
# end of the unit the time was rounded down to.
COMMITTED = ("epoch_us(b.last_modified) + CASE WHEN epoch_us(b.last_modified) % 1000000 = 0 "
             "THEN 1000000 ELSE 1 END <= epoch_us(get_current_timestamp())")


def _create_views(con, location: Location, tables: list[str]) -> None:
    def raw(table, filename=False):
        return (f"read_parquet({_quote(_glob(location, table))}, hive_partitioning = false, "
                f"union_by_name = true{', filename = true' if filename else ''})")

    run_columns = {name for name, *_ in con.execute(f"DESCRIBE SELECT * FROM {raw('runs')}").fetchall()}
    missing = [f"NULL::VARCHAR AS {c}" for c in ("kind", "name") if c not in run_columns]
    con.execute(f"""
        CREATE VIEW runs_complete AS
        SELECT r.* EXCLUDE (filename){''.join(", " + m for m in missing)}
        FROM {raw('runs', filename=True)} r
        JOIN read_blob({_quote(_glob(location, 'runs'))}) b ON b.filename = r.filename
        WHERE r.status = 'complete' AND {COMMITTED}""")
    keyed, columns_of = [], {}
    for table in tables:
        columns = con.execute(f"DESCRIBE SELECT * FROM {raw(table)}").fetchall()
        floats = [name for name, kind, *_ in columns if kind in ("DOUBLE", "FLOAT")]
        # NaN (in files of schema version 1) as null. Not isnan(x): DuckDB folds it to false from
        # the Parquet statistics, which leave NaN out; the text form is not folded.
        replace = (" REPLACE (" + ", ".join(
            f"CASE WHEN {_ident(c)}::VARCHAR IN ('nan', '-nan') THEN NULL ELSE {_ident(c)} END AS {_ident(c)}"
            for c in floats) + ")") if floats else ""
        if table == "runs":
            con.execute("CREATE VIEW runs AS SELECT * FROM runs_complete")
        else:
            con.execute(f"CREATE VIEW {_ident(table)} AS SELECT *{replace} FROM {raw(table)} "
                        "WHERE run_id IN (SELECT run_id FROM runs_complete)")
        columns_of[table] = [name for name, *_ in columns]
        if "scenario_id" in columns_of[table] and table not in ("design", "row_outputs"):  # design rows
            keyed.append(table)
    _key_views(con)
    for table in tables:
        view, name = _ident(f"latest_{table}"), _ident(table)
        if table in keyed:
            extra = "" if "scenario_name" in columns_of[table] else "l.scenario_name, "
            body = (f"SELECT t.*, {extra}l.kind, l.name, l.series FROM {name} t JOIN latest_scenario_runs l "
                    "ON t.run_id = l.run_id AND t.scenario_id = l.scenario_id")
        elif table == "runs":
            body = f"SELECT t.* FROM {name} t WHERE t.run_id IN (SELECT run_id FROM latest_scenario_runs)"
        elif "case" in columns_of[table]:  # backtest tables: each case's latest backtest
            body = f"""
                SELECT t.*, r.kind, r.name FROM {name} t JOIN runs_complete r USING (run_id)
                SEMI JOIN (SELECT run_id, "case" FROM (SELECT DISTINCT t.run_id, t."case", r.finished_at
                                                       FROM {name} t JOIN runs_complete r USING (run_id))
                           QUALIFY row_number() OVER (PARTITION BY "case"
                                                      ORDER BY finished_at DESC, run_id DESC) = 1) k
                ON t.run_id = k.run_id AND t."case" = k."case"
                """
        else:  # study and ablation tables: the latest run of each kind and name that has rows
            body = f"""
                SELECT t.*, r.kind, r.name FROM {name} t JOIN runs_complete r USING (run_id)
                WHERE t.run_id IN (SELECT run_id FROM runs_complete
                                   WHERE run_id IN (SELECT run_id FROM {name})
                                   QUALIFY row_number() OVER (PARTITION BY coalesce(kind, 'run'), name
                                                              ORDER BY finished_at DESC, run_id DESC) = 1)"""
        con.execute(f"CREATE VIEW {view} AS {body}")
    _wide_views(con, "design" in tables)


def _key_views(con) -> None:
    """`scenario_series` (every complete run's scenarios with their key, `series`: kind, name
    and scenario id, such as study:syria drivers/variant-1, run/tutorial) and
    `latest_scenario_runs` (each series' latest complete run; design rows left out). Runs
    written before runs.kind existed count as kind run, told apart by scenario name too."""
    con.execute("""
        CREATE VIEW scenario_series AS
        SELECT s.run_id, s.scenario_id, s.scenario_name, coalesce(r.kind, 'run') AS kind, r.name,
               coalesce(r.kind, 'run') || coalesce(':' || r.name, '') || '/' || s.scenario_id AS series,
               coalesce(r.kind = 'study', true) AND regexp_full_match(s.scenario_id, 'row-[0-9]+')
                   AS design_row,
               CASE WHEN r.kind IS NULL THEN s.scenario_name END AS legacy_name, r.finished_at
        FROM (SELECT DISTINCT run_id, scenario_id, scenario_name FROM scenarios) s
        JOIN runs_complete r USING (run_id)""")
    con.execute("""
        CREATE VIEW latest_scenario_runs AS
        SELECT scenario_id, scenario_name, run_id, finished_at, kind, name, series
        FROM scenario_series WHERE NOT design_row
        QUALIFY row_number() OVER (PARTITION BY series, legacy_name
                                   ORDER BY finished_at DESC, run_id DESC) = 1""")


def _wide_views(con, design: bool) -> None:
    wide = ",\n".join(f"any_value(s.{_ident(stat)}) FILTER (WHERE s.metric = {_quote(m)}) AS {m}_{stat}"
                      for m in METRICS for stat in STATISTICS)
    con.execute(f"""
        CREATE VIEW summary_wide AS
        SELECT s.run_id, s.scenario_id, any_value(c.scenario_name) AS scenario_name,
               any_value(c.capacity_unit) AS capacity_unit, any_value(c.payment_unit) AS payment_unit,
               {wide},
               any_value(s.success_low) FILTER (WHERE s.metric = 'success') AS success_low,
               any_value(s.success_high) FILTER (WHERE s.metric = 'success') AS success_high
        FROM summary s JOIN scenarios c ON c.run_id = s.run_id AND c.scenario_id = s.scenario_id
        GROUP BY s.run_id, s.scenario_id""")
    con.execute("""
        CREATE VIEW latest_summary_wide AS
        SELECT w.*, l.kind, l.name, l.series FROM summary_wide w JOIN latest_scenario_runs l
        ON w.run_id = l.run_id AND w.scenario_id = l.scenario_id""")
    if design:  # each study's latest run: one row per design row, its outputs and its inputs
        con.execute("""
            CREATE VIEW latest_design_rows AS
            WITH latest AS (
                SELECT run_id, kind, name FROM runs_complete
                WHERE run_id IN (SELECT run_id FROM design)
                QUALIFY row_number() OVER (PARTITION BY coalesce(kind, 'run'), name
                                           ORDER BY finished_at DESC, run_id DESC) = 1),
            inputs AS (
                SELECT run_id, scenario_id, any_value(row) AS row,
                       string_agg(input || ' = ' || value::VARCHAR, '; ' ORDER BY input) AS inputs
                FROM design WHERE run_id IN (SELECT run_id FROM latest) AND row >= 0  -- not base, variants
                GROUP BY run_id, scenario_id)
            SELECT w.*, i.row, i.inputs, l.kind, l.name,
                   coalesce(l.kind, 'run') || coalesce(':' || l.name, '') || '/' || w.scenario_id AS series
            FROM summary_wide w JOIN inputs i USING (run_id, scenario_id) JOIN latest l USING (run_id)""")
    con.execute(f"""
        CREATE VIEW capacity_distribution_shared AS
        WITH grid AS (SELECT run_id, max(bin_high) / {SHARED_BINS} AS width
                      FROM capacity_distribution GROUP BY run_id),
        binned AS (
            SELECT c.run_id, c.scenario_id,
                   least(floor((c.bin_low + c.bin_high) / 2 / g.width), {SHARED_BINS - 1})::BIGINT AS bin,
                   c.episodes, c.probability
            FROM capacity_distribution c JOIN grid g USING (run_id)),
        cells AS (
            SELECT k.run_id, k.scenario_id, b.bin, g.width
            FROM (SELECT DISTINCT run_id, scenario_id FROM capacity_distribution) k
            JOIN grid g USING (run_id) CROSS JOIN range({SHARED_BINS}) b(bin))
        SELECT x.run_id, x.scenario_id, x.bin, x.bin * x.width AS bin_low, (x.bin + 1) * x.width AS bin_high,
               coalesce(sum(b.episodes), 0)::BIGINT AS episodes,
               coalesce(sum(b.probability), 0.0) AS probability,
               sum(coalesce(sum(b.probability), 0.0)) OVER (PARTITION BY x.run_id, x.scenario_id
                                                             ORDER BY x.bin) AS cdf
        FROM cells x LEFT JOIN binned b USING (run_id, scenario_id, bin)
        GROUP BY x.run_id, x.scenario_id, x.bin, x.width""")


def _suite_views(con, location: Location) -> None:
    """`suite_runs`, `suite_drift`, `latest_suite` (each suite's latest suite run, one row per
    item) and `drift` (every flagged figure), over DIR/_suite (engine/suite; docs/NIGHTLY.md),
    when a suite has run in a local forecast directory."""
    root = Path(location.root) / "_suite"
    if not location.local or not any((root / "suite_runs").glob("suite_run_id=*/part-0.parquet")):
        return
    for table in ("suite_runs", "suite_drift"):
        pattern = _quote(glob_escape(str(root / table)) + "/suite_run_id=*/part-0.parquet")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({pattern}, "
                    "hive_partitioning = false, union_by_name = true)")
    con.execute("""
        CREATE VIEW latest_suite AS
        SELECT * FROM suite_runs
        WHERE suite_run_id IN (SELECT suite_run_id FROM suite_runs
                               QUALIFY row_number() OVER (PARTITION BY suite
                                   ORDER BY suite_finished_at DESC, suite_run_id DESC) = 1)""")
    con.execute("CREATE VIEW drift AS SELECT * FROM suite_drift WHERE flagged")
