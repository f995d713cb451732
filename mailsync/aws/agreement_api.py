"""The AWS Marketplace API plumbing shared by enrichment and the Agreement API source.

- `make_client(service, region, endpoint_url)`: a boto3 client (standard
  credential chain; `endpoint_url` as in boto3, for a local emulator) with
  botocore's own retries off, because `ApiCaller` retries.
- `ApiCaller.call(fn, **kwargs)`: one API call, retried with exponential
  backoff and jitter (tenacity) on throttling, 5xx and connection errors;
  counts calls per operation (`counts`), for `status`, the summary line and
  tests. Other errors (AccessDenied, NotFound, Validation) raise at once.
- `ApiCache`: a TTL cache of JSON values in the state store (or in memory),
  for answers that change rarely (entitlements, catalog names).
- `AgreementApi`: the Agreement Service calls mailsync makes
  (`SearchAgreements` pages, `DescribeAgreement`, `GetAgreementTerms`) and
  `DescribeEntity` (Catalog API) for offer and product names.
- `has_credentials()`, `error_code(err)`, `jsonable(answer)` (a botocore
  answer as the JSON data the parser reads).

The Agreement Service speaks JSON 1.0 (target prefix
`AWSMPCommerceService_v20200301`) or Smithy RPC v2 CBOR, as botocore chooses;
both give the same Python shapes (botocore model marketplace-agreement
2020-03-01). Errors worth another try follow the API reference's "Errors"
sections: ThrottlingException (429), InternalServerException (500).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from mailsync.statedb import ensure

_CACHE_DDL = """
CREATE TABLE IF NOT EXISTS enrich_cache (
    key TEXT PRIMARY KEY,
    fetched_at REAL NOT NULL,
    payload TEXT NOT NULL
);
"""
RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "InternalServiceErrorException",
        "InternalServerException",
        "ServiceUnavailableException",
    }
)
#: SearchAgreements / GetAgreementTerms pages per listing; a hostile or
#: broken endpoint handing out next tokens forever cannot loop for ever.
MAX_PAGES = 2000
PAGE_SIZE = 50  #: the API's maxResults limit


def jsonable(value: Any) -> Any:
    """A botocore answer as JSON data (datetimes as epoch seconds, as the
    JSON protocol sends them), so the parser sees one shape."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, Mapping):
        return {
            str(k): jsonable(v) for k, v in value.items() if k != "ResponseMetadata"
        }
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the class name."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(err).__name__


def retryable(err: BaseException) -> bool:
    """Throttling, 5xx and connection errors are worth another try."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRY_CODES or int(status or 0) >= 500
    return isinstance(err, ConnectionError | HTTPClientError)


def has_credentials() -> bool:
    """True when the standard AWS credential chain yields credentials."""
    import boto3

    return boto3.session.Session().get_credentials() is not None


def make_client(service: str, region: str, endpoint_url: str = "") -> Any:
    """A boto3 client for `service`; credentials from the standard chain."""
    import boto3
    from botocore.config import Config

    # Typed as Any: the stubs only accept each service name as a literal.
    factory: Any = boto3.session.Session().client
    return factory(
        service,
        region_name=region or "us-east-1",
        endpoint_url=endpoint_url or None,
        # One HTTP request per call: "max_attempts" alone means one *retry*
        # in botocore's legacy mode; ApiCaller does the retrying.
        config=Config(
            connect_timeout=5,
            read_timeout=15,
            retries={"mode": "standard", "total_max_attempts": 1},
        ),
    )


class ApiCaller:
    """Calls with tenacity backoff; `counts` per operation name."""

    def __init__(self, *, attempts: int = 5, wait: wait_base | None = None) -> None:
        self.attempts = attempts
        self.wait = wait or wait_exponential_jitter(initial=1, max=20)
        self.counts: Counter[str] = Counter()  #: HTTP requests made, per operation

    @property
    def calls(self) -> int:
        return sum(self.counts.values())

    def call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "call")
        for attempt in Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                self.counts[name] += 1
                return fn(**kwargs)
        raise AssertionError("unreachable")  # pragma: no cover


class ApiCache:
    """JSON values by key for `ttl` seconds, in the state store when given."""

    def __init__(
        self,
        state: sqlite3.Connection | None,
        *,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.ttl = ttl
        self.clock = clock
        self._memory: dict[str, tuple[float, Any]] = {}
        if state is not None:
            ensure(state, _CACHE_DDL)

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        now = self.clock()
        if self.state is not None:
            row = self.state.execute(
                "SELECT fetched_at, payload FROM enrich_cache WHERE key = ?", (key,)
            ).fetchone()
            if row and now - float(row[0]) < self.ttl:
                return json.loads(row[1])
        elif key in self._memory and now - self._memory[key][0] < self.ttl:
            return self._memory[key][1]
        value = load()
        if self.state is not None:
            with self.state:
                self.state.execute(
                    "INSERT OR REPLACE INTO enrich_cache (key, fetched_at, payload)"
                    " VALUES (?,?,?)",
                    (key, now, json.dumps(value)),
                )
        else:
            self._memory[key] = (now, value)
        return value


class AgreementApi:
    """The Agreement Service (and Catalog API) calls mailsync makes."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        endpoint_url: str = "",
        caller: ApiCaller | None = None,
        client: Any = None,
        catalog_client: Any = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.caller = caller or ApiCaller()
        self._client = client
        self._catalog = catalog_client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(
                "marketplace-agreement", self.region, self.endpoint_url
            )
        return self._client

    def search_pages(
        self, filters: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """SearchAgreements as proposer, every page (an empty page may still
        carry a nextToken), sorted by last update time, oldest first."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {
                "catalog": "AWSMarketplace",
                "filters": filters,
                "sort": {"sortBy": "LastUpdateTime", "sortOrder": "ASCENDING"},
                "maxResults": PAGE_SIZE,
            }
            if token:
                kwargs["nextToken"] = token
            page = self.caller.call(self.client.search_agreements, **kwargs)
            items = page.get("agreementViewSummaries") or []
            yield [i for i in items if isinstance(i, dict)]
            token = page.get("nextToken")
            if not token:
                return

    def describe(self, agreement_id: str) -> dict[str, Any]:
        out = self.caller.call(self.client.describe_agreement, agreementId=agreement_id)
        out.pop("ResponseMetadata", None)
        return dict(out)

    def terms(self, agreement_id: str) -> dict[str, Any]:
        """GetAgreementTerms, every page, as one `{"acceptedTerms": [...]}`."""
        terms: list[Any] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {"agreementId": agreement_id, "maxResults": 50}
            if token:
                kwargs["nextToken"] = token
            page = self.caller.call(self.client.get_agreement_terms, **kwargs)
            terms.extend(page.get("acceptedTerms") or [])
            token = page.get("nextToken")
            if not token:
                break
        return {"acceptedTerms": terms}

    def entity_name(self, entity_id: str) -> str | None:
        """The catalog name of an offer or product: DescribeEntity's
        `DetailsDocument` (`Name` for an Offer, `Description.ProductTitle`
        for a product; Catalog API reference, "Working with offers" and
        "Working with SaaS products"), else the `Details` JSON string."""
        if self._catalog is None:
            self._catalog = make_client(
                "marketplace-catalog", self.region, self.endpoint_url
            )
        out = self.caller.call(
            self._catalog.describe_entity, Catalog="AWSMarketplace", EntityId=entity_id
        )
        doc = out.get("DetailsDocument")
        if not isinstance(doc, dict):
            try:
                doc = json.loads(out.get("Details") or "{}")
            except (TypeError, ValueError, RecursionError):
                doc = {}
        if not isinstance(doc, dict):
            return None
        description = doc.get("Description")
        name = doc.get("Name")
        if not isinstance(name, str) and isinstance(description, dict):
            name = description.get("ProductTitle")
        if isinstance(name, str) and name.strip():
            return " ".join(name.split())[:255]
        return None
