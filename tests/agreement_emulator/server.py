"""An AWS Marketplace Agreement Service emulator over real HTTP on 127.0.0.1.

Unmodified boto3 talks to it through `endpoint_url`. Protocols (botocore model
marketplace-agreement 2020-03-01, `protocols: [smithy-rpc-v2-cbor, json]`):

- awsJson 1.0: ``POST /`` with ``X-Amz-Target:
  AWSMPCommerceService_v20200301.<Operation>``, JSON bodies, timestamps as
  epoch seconds, errors as ``{"__type": code, "message": ...}`` plus the
  ``x-amzn-ErrorType`` header;
- Smithy RPC v2 CBOR: ``POST /service/AWSMPCommerceService_v20200301/
  operation/<Operation>`` with ``smithy-protocol: rpc-v2-cbor``, CBOR bodies
  (timestamps as tag-1 epoch seconds), errors with ``__type`` in the body;
- the Entitlement Service's ``GetEntitlements`` (awsJson 1.1, target
  ``AWSMPEntitlementService.GetEntitlements``) and the Catalog API's
  ``DescribeEntity`` (REST JSON, ``GET /DescribeEntity``), for enrichment
  and names.

Operations: SearchAgreements (filters PartyType, AgreementType,
AfterLastUpdateTime, BeforeLastUpdateTime, Status, AcceptorAccountId, OfferId,
ResourceIdentifier; sort by LastUpdateTime / StartTime / EndTime; pagination
by opaque nextToken), DescribeAgreement, GetAgreementTerms. Tests add
agreements with `Emulator.put`, read `calls` (operation counts) and `log`,
and inject `faults` (throttle the next N calls of an operation, deny one,
throttle one agreement's DescribeAgreement for ever).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TARGET = "AWSMPCommerceService_v20200301"
ENTITLEMENT_TARGET = "AWSMPEntitlementService"
SEARCH_FIELDS = (
    "agreementId acceptanceTime startTime endTime lastUpdateTime agreementType "
    "acceptor proposer proposalSummary status entitlements initialAgreementId".split()
)
DESCRIBE_FIELDS = (
    "agreementId acceptor proposer startTime endTime acceptanceTime agreementType "
    "estimatedCharges proposalSummary status initialAgreementId".split()
)
TIME_FIELDS = ("acceptanceTime", "startTime", "endTime", "lastUpdateTime")


def ts(text: str) -> float:
    """ISO 8601 text to epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Faults:
    #: operation -> how many of its next calls answer ThrottlingException
    throttle: Counter[str] = field(default_factory=Counter)
    #: operations that answer AccessDeniedException
    denied: set[str] = field(default_factory=set)
    #: agreement IDs whose DescribeAgreement is always throttled
    throttle_agreements: set[str] = field(default_factory=set)
    #: agreement IDs SearchAgreements lists but DescribeAgreement does not find
    missing: set[str] = field(default_factory=set)
    #: operation -> errors (HTTP status, code) its next calls answer, in order
    errors: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: GetEntitlements answers this many empty pages (with a NextToken) first
    empty_entitlement_pages: int = 0
    #: seconds each DescribeAgreement takes (a slow pass, to kill it midway)
    describe_delay: float = 0.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class Emulator:
    """The agreements this seller account proposes, and the call log."""

    def __init__(self, *, page_size: int | None = None) -> None:
        self.agreements: dict[str, dict[str, Any]] = {}
        self.terms: dict[str, list[dict[str, Any]]] = {}
        self.entities: dict[str, str] = {}  #: Catalog entity ID -> name
        self.entitlements: list[dict[str, Any]] = []
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.protocols: Counter[str] = Counter()  #: requests per wire protocol
        self.page_size = page_size  #: cap on maxResults, to force pagination
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -- test API ----------------------------------------------------------------

    def put(
        self,
        agreement_id: str,
        *,
        updated: str,
        acceptor: str = "210987654321",
        proposer: str = "123456789012",
        status: str = "ACTIVE",
        offer: str = "offer-7j3k9m2n5b8vc",
        product: str = "prod-7hq2kx3m9pz4d",
        product_type: str = "SaaSProduct",
        accepted: str | None = "2026-03-03T14:07:11Z",
        start: str | None = "2026-03-03T14:07:11Z",
        end: str | None = "2027-03-02T23:59:59Z",
        amount: str | None = "48000.00",
        currency: str | None = "USD",
        initial: str | None = None,
        license_arn: str | None = None,
        terms: list[dict[str, Any]] | None = None,
    ) -> None:
        """Add or change one agreement (`updated` = its lastUpdateTime)."""
        record: dict[str, Any] = {
            "agreementId": agreement_id,
            "agreementType": "PurchaseAgreement",
            "acceptor": {"accountId": acceptor},
            "proposer": {"accountId": proposer},
            "status": status,
            "proposalSummary": {
                "offerId": offer,
                "resources": [{"id": product, "type": product_type}],
            },
            "initialAgreementId": initial or agreement_id,
            "lastUpdateTime": ts(updated),
        }
        for key, value in (
            ("acceptanceTime", accepted),
            ("startTime", start),
            ("endTime", end),
        ):
            if value is not None:
                record[key] = ts(value)
        if amount is not None or currency is not None:
            charges = {"agreementValue": amount, "currencyCode": currency}
            record["estimatedCharges"] = {k: v for k, v in charges.items() if v}
        if license_arn:
            record["entitlements"] = [{"licenseArn": license_arn}]
        with self.lock:
            self.agreements[agreement_id] = record
            self.terms[agreement_id] = terms or []

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()
            self.log.clear()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Emulator:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- operations ----------------------------------------------------------------

    def dispatch(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeAgreement" and self.faults.describe_delay:
            time.sleep(self.faults.describe_delay)
        with self.lock:
            self.calls[operation] += 1
            self.log.append((operation, body))
            if operation in self.faults.denied:
                raise ApiError(
                    403,
                    "AccessDeniedException",
                    "User is not authorized",
                    reason="INVALID_ACCESS",
                )
            queued = self.faults.errors.get(operation)
            if queued:
                status, code = queued.pop(0)
                raise ApiError(status, code, f"{code} (emulated)")
            if self.faults.throttle[operation] > 0:
                self.faults.throttle[operation] -= 1
                raise ApiError(429, "ThrottlingException", "Rate exceeded")
            handler = getattr(self, "_op_" + operation, None)
            if handler is None:
                raise ApiError(400, "UnknownOperationException", operation)
            result: dict[str, Any] = handler(body)
            return result

    def _op_SearchAgreements(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("catalog") != "AWSMarketplace":
            raise ApiError(
                400, "ValidationException", "catalog", reason="INVALID_CATALOG"
            )
        filters: dict[str, str] = {}
        for f in body.get("filters") or []:
            values = f.get("values") or []
            if len(values) != 1:
                raise ApiError(
                    400,
                    "ValidationException",
                    "one value per filter",
                    reason="INVALID_FILTER_VALUES",
                )
            filters[f["name"]] = values[0]
        if filters.get("PartyType") != "Proposer" or "AgreementType" not in filters:
            raise ApiError(
                400,
                "ValidationException",
                "PartyType Proposer and AgreementType required",
                reason="INVALID_FILTERS",
            )
        rows = [a for a in self.agreements.values() if _matches(a, filters)]
        sort = body.get("sort") or {}
        key = {"LastUpdateTime": "lastUpdateTime", "StartTime": "startTime"}.get(
            sort.get("sortBy", "EndTime"), "endTime"
        )
        rows.sort(key=lambda a: (a.get(key) or 0, a["agreementId"]))
        if sort.get("sortOrder") == "DESCENDING":
            rows.reverse()
        size = min(int(body.get("maxResults") or 50), 50)
        if self.page_size:
            size = min(size, self.page_size)
        token = body.get("nextToken")
        start = int(base64.b64decode(token).decode()) if token else 0
        page = rows[start : start + size]
        out: dict[str, Any] = {
            "agreementViewSummaries": [
                {k: a[k] for k in SEARCH_FIELDS if k in a} for a in page
            ]
        }
        if start + size < len(rows):
            out["nextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return out

    def _agreement(self, body: dict[str, Any]) -> dict[str, Any]:
        agreement_id = body.get("agreementId")
        found = self.agreements.get(str(agreement_id))
        if found is None or agreement_id in self.faults.missing:
            raise ApiError(
                404,
                "ResourceNotFoundException",
                f"Agreement {agreement_id} not found",
                resourceId=str(agreement_id),
                resourceType="Agreement",
            )
        return found

    def _op_DescribeAgreement(self, body: dict[str, Any]) -> dict[str, Any]:
        found = self._agreement(body)
        if found["agreementId"] in self.faults.throttle_agreements:
            raise ApiError(429, "ThrottlingException", "Rate exceeded")
        return {k: found[k] for k in DESCRIBE_FIELDS if k in found}

    def _op_GetAgreementTerms(self, body: dict[str, Any]) -> dict[str, Any]:
        found = self._agreement(body)
        terms = self.terms.get(found["agreementId"], [])
        size = min(int(body.get("maxResults") or 50), 50)
        token = body.get("nextToken")
        start = int(base64.b64decode(token).decode()) if token else 0
        out: dict[str, Any] = {"acceptedTerms": terms[start : start + size]}
        if start + size < len(terms):
            out["nextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return out

    def _op_GetEntitlements(self, body: dict[str, Any]) -> dict[str, Any]:
        filt = body.get("Filter") or {}
        rows = [
            e
            for e in self.entitlements
            if e.get("ProductCode") == body.get("ProductCode")
            and all(
                str(e.get(_ENTITLEMENT_FILTER[k])) in v
                for k, v in filt.items()
                if k in _ENTITLEMENT_FILTER
            )
        ]
        if self.faults.empty_entitlement_pages > 0:
            self.faults.empty_entitlement_pages -= 1
            return {"Entitlements": [], "NextToken": "page-2"}
        return {"Entitlements": rows}

    def _op_DescribeEntity(self, body: dict[str, Any]) -> dict[str, Any]:
        entity = str(body.get("entityId"))
        if entity not in self.entities:
            raise ApiError(404, "ResourceNotFoundException", f"{entity} not found")
        name = self.entities[entity]
        if entity.startswith("offer-"):
            return {
                "EntityIdentifier": entity,
                "EntityType": "Offer@1.0",
                "DetailsDocument": {"Name": name},
            }
        return {
            "EntityIdentifier": entity,
            "EntityType": "SaaSProduct@1.0",
            "Details": json.dumps({"Description": {"ProductTitle": name}}),
        }


_ENTITLEMENT_FILTER = {
    "CUSTOMER_IDENTIFIER": "CustomerIdentifier",
    "CUSTOMER_AWS_ACCOUNT_ID": "CustomerAWSAccountId",
}


def _matches(agreement: dict[str, Any], filters: dict[str, str]) -> bool:
    for name, value in filters.items():
        if name == "AgreementType" and agreement["agreementType"] != value:
            return False
        if name == "Status" and agreement["status"] != value:
            return False
        if name == "AcceptorAccountId" and agreement["acceptor"]["accountId"] != value:
            return False
        if name == "OfferId" and agreement["proposalSummary"]["offerId"] != value:
            return False
        if name == "ResourceIdentifier" and value not in {
            r["id"] for r in agreement["proposalSummary"]["resources"]
        }:
            return False
        if name == "AfterLastUpdateTime" and not agreement["lastUpdateTime"] > ts(
            value
        ):
            return False
        if name == "BeforeLastUpdateTime" and not agreement["lastUpdateTime"] < ts(
            value
        ):
            return False
    return True


def _handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/DescribeEntity":  # Catalog API, REST JSON
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self._answer("DescribeEntity", query, self._json)
            else:
                self._send(404, b"{}", "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = urlsplit(self.path).path
            if path.startswith(f"/service/{TARGET}/operation/"):
                import cbor2

                body = cbor2.loads(raw) if raw else {}
                emulator.protocols["rpc-v2-cbor"] += 1
                self._answer(path.rsplit("/", 1)[1], body, self._cbor)
                return
            target = self.headers.get("X-Amz-Target", "")
            prefix, _, operation = target.partition(".")
            if prefix not in (TARGET, ENTITLEMENT_TARGET):
                self._send(
                    400,
                    b'{"__type":"UnknownOperationException"}',
                    "application/x-amz-json-1.0",
                )
                return
            emulator.protocols["json"] += 1
            self._answer(operation, json.loads(raw or b"{}"), self._json)

        def _answer(self, operation: str, body: dict[str, Any], send: Any) -> None:
            try:
                result = emulator.dispatch(operation, body)
            except ApiError as err:
                send(
                    err.status,
                    {"__type": err.code, "message": err.message, **err.extra},
                    err.code,
                )
                return
            send(200, result, None)

        def _json(self, status: int, data: dict[str, Any], code: str | None) -> None:
            extra = {"x-amzn-ErrorType": code} if code else {}
            self._send(
                status, json.dumps(data).encode(), "application/x-amz-json-1.0", extra
            )

        def _cbor(self, status: int, data: dict[str, Any], code: str | None) -> None:
            import cbor2

            self._send(
                status,
                cbor2.dumps(_cbor_times(data)),
                "application/cbor",
                {"smithy-protocol": "rpc-v2-cbor"},
            )

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "emulator-request")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _cbor_times(value: Any, key: str = "") -> Any:
    """Timestamps as CBOR tag 1 (epoch seconds), as Smithy RPC v2 CBOR sends them."""
    import cbor2

    if isinstance(value, dict):
        return {k: _cbor_times(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_cbor_times(v, key) for v in value]
    if key in TIME_FIELDS or key == "chargeDate":
        if isinstance(value, int | float):
            return cbor2.CBORTag(1, float(value))
    return value


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
