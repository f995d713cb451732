"""The Seller Data Feeds source: the SDDS bucket in S3 (contract section 7).

One pass:

1. list ``<prefix><folder>/`` for each configured feed folder
   (`s3:ListBucket`); every ``.csv`` object is a feed file, keyed by its path
   below the prefix, its signature the ETag and size;
2. a file whose signature is the one recorded is skipped; each changed file
   is downloaded to a temporary file (`s3:GetObject` with ``IfMatch`` on the
   listed ETag, so the bytes read are exactly the listed version: a file AWS
   appends to between listing and reading fails the condition and is read
   on the next pass);
3. `FeedSync.run` reads the downloaded files into the feed store and submits
   the recomputed records to the record outbox; the cursor (the recorded
   signatures) moves in that same transaction, after the records are durable.

A month file AWS appended to is read again from its start; the store's
versioning makes that equal to a full re-read. Header-only files are fine.
S3 errors are `TransientError` (the daemon retries on the next poll) with
the permission to check when access is denied.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import IO, Any

from mailsync.config import SddsSettings, Settings
from mailsync.errors import TransientError
from mailsync.ledger import Ledger
from mailsync.sdds.feedsync import FeedFile, FeedSync, SyncReport
from mailsync.sink import Sink
from mailsync.sources.base import CheckLine, PassResult
from mailsync.statedb import open_db

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def make_client(settings: SddsSettings) -> Any:
    """A boto3 S3 client; credentials from the standard AWS chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url or None,
        config=config,
    )


class SddsSource:
    """`Source` over the SDDS bucket (see the module docstring)."""

    name = "sdds"

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        assert settings.sdds is not None
        self.cfg = settings.sdds
        self.state_path = settings.state.path
        self.client: Any = (
            client
            if client is not None or self.cfg.path is not None
            else make_client(self.cfg)
        )
        self.last_report: SyncReport | None = None

    # -- listing -----------------------------------------------------------------

    def listing(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(feed, key below the prefix, S3 object summary) of every feed file."""
        out: list[tuple[str, str, dict[str, Any]]] = []
        for feed, folder in self.cfg.folders:
            top = f"{self.cfg.prefix}{folder}/"
            for obj in self._objects(top):
                key = str(obj["Key"])
                if key.endswith(".csv"):
                    out.append((feed, key[len(self.cfg.prefix) :], obj))
        return out

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.cfg.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            page = self._call("s3:ListBucket", self.client.list_objects_v2, **args)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def _call(self, action: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.cfg.bucket}/{kwargs.get('Key') or kwargs.get('Prefix')}"
        try:
            return fn(**kwargs)
        except ClientError as err:
            raise self._explain(action, where, err) from None
        except BotoCoreError as err:
            raise TransientError(f"[source.sdds] S3 cannot be reached: {err}") from None

    def _explain(self, action: str, where: str, err: Any) -> TransientError:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("AccessDenied", "403"):
            return TransientError(
                f"[source.sdds] {where}: access denied; the credentials need "
                f"{action} on the bucket"
            )
        if code == "NoSuchBucket":
            return TransientError(
                f"[source.sdds] bucket: {self.cfg.bucket!r} does not exist"
            )
        return TransientError(f"[source.sdds] {where}: {code or err}")

    # -- one pass ------------------------------------------------------------------

    def run_pass(self, sink: Sink, stop: threading.Event) -> PassResult:
        """Read the changed feed files and submit their records (the record
        outbox lives in the state store; `sink` is not used: an SDDS pass adds
        no events)."""
        del sink
        result = PassResult()
        conn = open_db(self.state_path)
        try:
            feeds = FeedSync(conn, origin=self.name)
            if self.cfg.path is not None:
                report = feeds.run(self._local())
                return self._result(report)
            listed = [
                FeedFile(feed, key, _signature(obj), _unopened)
                for feed, key, obj in self.listing()
            ]
            changed = feeds.changed(listed)
            with ExitStack() as stack:
                local: list[FeedFile] = []
                for f in changed:
                    if stop.is_set():
                        return result
                    path = self._download(f, stack)
                    if path is None:
                        continue  # appended to since listing: next pass
                    local.append(FeedFile(f.feed, f.key, f.signature, _opener(path)))
                report = feeds.run(local)
        finally:
            conn.close()
        return self._result(report)

    def _result(self, report: SyncReport) -> PassResult:
        self.last_report = report
        conn = open_db(self.state_path)
        try:
            Ledger(conn).source_ok(self.name, f"billing data as of {report.as_of}")
        finally:
            conn.close()
        if report.files_read:
            log.info(report.line())
        return PassResult(fetched=report.files_read, synced=report.submitted)

    def _local(self) -> list[FeedFile]:
        from mailsync.errors import InputError
        from mailsync.sdds.files import local_files

        assert self.cfg.path is not None
        try:
            return local_files([self.cfg.path], dict(self.cfg.folders))
        except InputError as err:
            raise TransientError(f"[source.sdds] path: {err}") from None

    def _download(self, f: FeedFile, stack: ExitStack) -> Path | None:
        from botocore.exceptions import BotoCoreError, ClientError

        etag = f.signature.split(";")[0].removeprefix("etag=")
        key = f"{self.cfg.prefix}{f.key}"
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mailsync-sdds-"))
        path = Path(tmp) / "data.csv"
        try:
            answer = self.client.get_object(
                Bucket=self.cfg.bucket, Key=key, IfMatch=etag
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                return None
            raise self._explain(
                "s3:GetObject", f"s3://{self.cfg.bucket}/{key}", err
            ) from None
        except BotoCoreError as err:
            raise TransientError(f"[source.sdds] S3 cannot be reached: {err}") from None
        body = answer["Body"]
        try:
            with path.open("wb") as out:
                for block in iter(lambda: body.read(_CHUNK), b""):
                    out.write(block)
        except OSError as err:
            raise TransientError(
                f"[source.sdds] {key} cannot be downloaded: {err}"
            ) from None
        finally:
            body.close()
        return path

    def wait_for_input(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(min(timeout, self.cfg.poll_interval))

    def check(self) -> list[CheckLine]:
        """One line per feed folder: files found and the newest delivery."""
        if self.cfg.path is not None:
            try:
                found = self._local()
            except TransientError as err:
                return [CheckLine("source sdds", False, str(err))]
            return [
                CheckLine(
                    f"source sdds {folder}",
                    any(f.feed == feed for f in found),
                    f"{sum(f.feed == feed for f in found)} files under "
                    f"{self.cfg.path}",
                )
                for feed, folder in self.cfg.folders
            ]
        try:
            listed = self.listing()
        except TransientError as err:
            return [CheckLine("source sdds", False, str(err))]
        lines = []
        for feed, folder in self.cfg.folders:
            mine = [o for f, _, o in listed if f == feed]
            if not mine:
                lines.append(
                    CheckLine(
                        f"source sdds {folder}",
                        False,
                        f"no data.csv under s3://{self.cfg.bucket}/{self.cfg.prefix}"
                        f"{folder}/ (subscribed to the Seller Data Feeds? folder "
                        "names in [source.sdds.folders])",
                    )
                )
                continue
            newest = max(mine, key=lambda o: o["LastModified"])
            lines.append(
                CheckLine(
                    f"source sdds {folder}",
                    True,
                    f"{len(mine)} files; newest delivery "
                    f"{newest['LastModified']:%Y-%m-%dT%H:%M:%SZ} "
                    f"({newest['Key']}, {newest['Size']} bytes)",
                )
            )
        return lines

    def close(self) -> None:
        pass


def _signature(obj: dict[str, Any]) -> str:
    return f"etag={obj.get('ETag', '')};size={obj.get('Size', 0)}"


def _unopened() -> AbstractContextManager[IO[bytes]]:
    raise AssertionError("a listed file is read only after its download")


def _opener(path: Path) -> Any:
    return lambda: path.open("rb")


def build(settings: Settings) -> SddsSource:
    return SddsSource(settings)
