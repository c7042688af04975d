"""Where a forecast directory lives: a local directory or object storage (s3://bucket/prefix).

`locate(out)` turns `--out` into a `Location`: a pyarrow filesystem and the
root path inside it. Plain paths (and file:// URIs) are local directories;
any other URI goes through `pyarrow.fs.FileSystem.from_uri` (s3://, gs://,
abfs://, hdfs://, as far as the installed pyarrow supports them), with the
standard environment variables for credentials (for S3: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...).

Readers here trust only complete runs: a table's rows count once the run's
`runs` row (status complete) is published, because it is published last.
"""
from __future__ import annotations

import errno
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

RUN_DIR = re.compile(r"run_id=(.+)")
PART = "part-0.parquet"


class StorageError(ValueError):
    """`--out` names no usable place (reported like bad input: exit code 2)."""


@dataclass(frozen=True)
class Location:
    """A forecast directory: `fs` and the `root` path inside it; `uri` as the user gave it."""
    uri: str
    fs: pafs.FileSystem
    root: str
    local: bool

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def part(self, table: str, run_id: str) -> str:
        """Where a run's file of `table` is published."""
        return self.path(table, f"run_id={run_id}", PART)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def children(self, path: str) -> list[str]:
        """Names of the directories directly under `path` (none when it does not exist)."""
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
        return sorted(info.base_name for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.Directory)

    def table_names(self) -> list[str]:
        """Tables with at least one published file, in name order."""
        return [t for t in self.children(self.root) if not t.startswith(("_", "."))
                and any(RUN_DIR.fullmatch(d) for d in self.children(self.path(t)))]

    def run_ids(self, table: str) -> list[str]:
        """Run ids with a published file of `table`."""
        ids = []
        for d in self.children(self.path(table)):
            match = RUN_DIR.fullmatch(d)
            if match and self.exists(self.part(table, match.group(1))):
                ids.append(match.group(1))
        return ids

    def read(self, table: str, run_id: str) -> pa.Table:
        return pq.read_table(self.part(table, run_id), filesystem=self.fs)


def locate(out, what: str = "--out") -> Location:
    """The `Location` of `--out` (or of `what`, such as $PIVOTAL_CHECKPOINT_DIR): a local
    directory, or a URI pyarrow.fs can open."""
    text = str(out)
    if not text.strip():
        raise StorageError(f"{what} is empty; give a directory (default ./forecasts) or a URI")
    if "://" not in text:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", text):  # pyarrow would take s3:/x for a URI
            raise StorageError(f"{what} {text!r} looks like a URI but is not one: write "
                               f"scheme://bucket/prefix, or ./{text} for a local directory")
        return Location(text, pafs.LocalFileSystem(), str(Path(text).absolute()), True)
    try:
        fs, root = pafs.FileSystem.from_uri(_bounded_retries(_with_endpoint(text)))
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise StorageError(f"{what} {text!r} cannot be opened ({exc}); give a directory, "
                           "s3://bucket/prefix or another URI that pyarrow.fs supports") from None
    local = isinstance(fs, pafs.LocalFileSystem)
    if not local and not root.strip("/"):
        raise StorageError(f"{what} {text!r} names no bucket; give scheme://bucket/prefix")
    return Location(text, fs, root, local)


GCS_RETRY_SECONDS = 10  # pyarrow's GCS client otherwise retries an unreachable service for 15 minutes


def _bounded_retries(uri: str) -> str:
    """A gs:// URI with `retry_limit_seconds` (GCS_RETRY_SECONDS unless the URI names one), so a
    missing network or credentials fail the command in seconds."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() not in ("gs", "gcs") or "retry_limit_seconds" in urllib.parse.parse_qs(parts.query):
        return uri
    extra = f"retry_limit_seconds={GCS_RETRY_SECONDS}"
    return urllib.parse.urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _with_endpoint(uri: str) -> str:
    """An s3:// URI with AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL as its endpoint_override
    (pyarrow does not read those variables itself), unless the URI names one."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme.lower() != "s3" or not endpoint or "endpoint_override" in query:
        return uri
    extra = urllib.parse.urlencode({"endpoint_override": endpoint})
    return urllib.parse.urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


CHECKPOINT_DIR = "PIVOTAL_CHECKPOINT_DIR"


def checkpoint_root(location: Location) -> Path | Location:
    """Where runs written to object storage keep their plan and chunk checkpoints:
    $PIVOTAL_CHECKPOINT_DIR, else ~/.cache/pivotal/checkpoints, then one folder per
    `--out` URI (its scheme and path, with every other character replaced by '_').
    A URI there (s3://bucket/prefix) keeps them in object storage, where a driver on
    another machine can resume the run (engine/outputs/checkpoints.py): then it is a
    `Location`, else a local directory."""
    base = os.environ.get(CHECKPOINT_DIR) or str(Path.home() / ".cache" / "pivotal" / "checkpoints")
    name = _folder_name(location)
    shared = locate(base, f"${CHECKPOINT_DIR}")
    if shared.local:
        return Path(shared.root) / name
    return Location(f"{base.split('?', 1)[0].rstrip('/')}/{name}", shared.fs, shared.path(name), False)


def local_staging(location: Location) -> Path:
    """Where a run whose checkpoints are in object storage writes its tables before uploading
    them, and keeps its run-id lock: on this machine, one folder per `--out` URI."""
    return Path.home() / ".cache" / "pivotal" / "staging" / _folder_name(location)


def _folder_name(location: Location) -> str:
    """The `--out` URI as one folder name: its scheme and path, other characters as '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", location.uri.rstrip("/"))


def put_object(location: Location, path: str, data: bytes) -> None:
    """Write `data` to `path` whole: one write into a fresh stream, so object storage makes it
    visible on close (one PUT, or a multipart upload completed by close) or not at all."""
    stream = location.fs.open_output_stream(path)
    stream.write(data)
    stream.close()


def get_object(location: Location, path: str) -> bytes:
    with location.fs.open_input_stream(path) as stream:
        return stream.readall()


def complete_runs(location: Location) -> pl.DataFrame:
    """Published runs with status complete, oldest first (by finished_at, then run id)."""
    frames = [pl.from_arrow(location.read("runs", r)) for r in location.run_ids("runs")]
    if not frames:
        return pl.DataFrame()
    runs = pl.concat(frames, how="diagonal_relaxed")
    return runs.filter(pl.col("status") == "complete").sort(["finished_at", "run_id"])


EVERY_RUN = ("runs", "scenarios", "summary", "size_distribution", "capacity_distribution",
             "time_to_success", "candidates")  # tables every complete run has


def run_tables(location: Location, run_id: str) -> dict[str, pl.DataFrame]:
    """Every published table of one run, as Polars DataFrames. A complete run missing one of
    the tables every run has (a directory removed by hand) is an OSError naming the file."""
    names = set(location.table_names())
    for table in EVERY_RUN:
        if table not in names or not location.exists(location.part(table, run_id)):
            raise OSError(errno.ENOENT, f"run {run_id} is complete but this table file is missing "
                          "(removed or moved after the run); restore it or rerun the run",
                          location.part(table, run_id))
    return {t: pl.from_arrow(location.read(t, run_id)) for t in sorted(names)
            if location.exists(location.part(t, run_id))}
