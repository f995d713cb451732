"""A Salesforce REST emulator over real HTTP on 127.0.0.1 (random port).

Serves what simple-salesforce 1.12 and mailsync use: SOAP login, the OAuth
token endpoint (password, client credentials, JWT bearer), versions, sObject
list and describe, single-record create/update/upsert, sObject Collections
upsert/create/update, composite, query with paging, limits. Every REST answer
carries ``Sforce-Limit-Info: api-usage=N/M``. Shapes follow
``reference/salesforce.md`` section 3. Tests flip the `Faults` switches and
read `calls` (per endpoint) and `api_calls` (counted REST requests).
"""

# ruff: noqa: E501

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from .schema import FieldDef, load_schema
from .store import DmlError, Store, Validator

HOST = "emulator.my.salesforce.com"
ORG_ID = "00D000000000001EAA"
PAGE = 2000


@dataclass
class Faults:
    always_invalid_session: bool = False  #: every REST call answers 401
    unavailable: int = 0  #: answer 503 (HTML) to the next N REST calls
    lock_rows: int = 0  #: next N write calls fail with UNABLE_TO_LOCK_ROW
    limit_reached: bool = False  #: 403 REQUEST_LIMIT_EXCEEDED
    hidden_fields: set[tuple[str, str]] = field(default_factory=set)  #: not in describe
    #: error messages quote the request's Authorization header and SigV4-like
    #: material, as an echoing proxy or error page does
    echo_auth: bool = False


class Emulator:
    def __init__(self, *, api_max: int = 15000) -> None:
        self.store = Store(load_schema())
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self.api_calls = 0
        self.api_max = api_max
        self.logins = 0
        self.tokens: set[str] = set()
        self.username = "integration@example.com"
        self.password = "s3cret"
        self.security_token = "TOKEN123"
        self.consumer_key = "3MVG9-test-key"
        self.consumer_secret = "consumer-secret"
        self.jwt_public_key: str | bytes = ""
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Emulator:
        handler = type("Handler", (_Handler,), {"emu": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls ----------------------------------------------------------
    def expire_sessions(self) -> None:
        self.tokens.clear()

    def add_validation(self, rule: Validator) -> None:
        self.store.validators.append(rule)

    def remove_field(self, obj: str, name: str) -> FieldDef:
        """The org without `obj`.`name` (metadata not deployed): describe
        leaves it out and writes naming it answer INVALID_FIELD. Returns the
        field, for `deploy_field`."""
        return self.store.schema[obj].fields.pop(name)

    def deploy_field(self, obj: str, field: FieldDef) -> None:
        self.store.schema[obj].fields[field.name] = field

    def records(self, obj: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.records[obj].values()]

    def _issue(self) -> str:
        token = f"{ORG_ID}!{secrets.token_hex(16)}"
        self.tokens.add(token)
        self.logins += 1
        return token

    # -- auth endpoints ---------------------------------------------------------
    def soap_login(self, body: str) -> tuple[int, str, str]:
        self.calls["soap_login"] += 1
        user = html.unescape(_tag(body, "username"))
        password = html.unescape(_tag(body, "password"))
        if user != self.username or password != self.password + self.security_token:
            return 500, "text/xml", _SOAP_FAULT
        ok = _SOAP_OK.format(host=HOST, org=ORG_ID, session=self._issue(), user=user)
        return 200, "text/xml", ok

    def oauth_token(self, body: str, headers: Any) -> tuple[int, dict[str, Any]]:
        self.calls["oauth_token"] += 1
        form = {k: v[0] for k, v in parse_qs(body).items()}
        grant = form.get("grant_type", "")
        bad = (
            400,
            {"error": "invalid_grant", "error_description": "authentication failure"},
        )
        if grant == "client_credentials":
            basic = headers.get("Authorization", "").removeprefix("Basic ")
            want = f"{self.consumer_key}:{self.consumer_secret}".encode()
            if base64.b64decode(basic or "=") != want:
                return 400, {
                    "error": "invalid_client",
                    "error_description": "invalid client credentials",
                }
        elif grant == "password":
            if (form.get("client_id"), form.get("client_secret")) != (
                self.consumer_key,
                self.consumer_secret,
            ):
                return 400, {
                    "error": "invalid_client_id",
                    "error_description": "client identifier invalid",
                }
            if (form.get("username"), form.get("password")) != (
                self.username,
                self.password,
            ):
                return bad
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    self.jwt_public_key,
                    algorithms=["RS256"],
                    options={"verify_exp": False, "verify_aud": False},
                )
            except (jwt.PyJWTError, ValueError):
                return bad
            if (
                claims.get("iss") != self.consumer_key
                or claims.get("sub") != self.username
            ):
                return bad
            if float(claims.get("exp", 0)) < time.time() or not str(
                claims.get("aud", "")
            ).endswith(".salesforce.com"):
                return bad
        else:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant type not supported",
            }
        return 200, {
            "access_token": self._issue(),
            "instance_url": f"https://{HOST}",
            "id": f"https://login.salesforce.com/id/{ORG_ID}/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": "emulated",
        }

    # -- REST -------------------------------------------------------------------
    def rest(
        self, method: str, path: str, query: dict[str, str], body: Any, auth: str
    ) -> tuple[int, Any]:
        """Route one authenticated REST request; returns (status, JSON body)."""
        status, answer = self._rest(method, path, query, body, auth)
        if self.faults.echo_auth:
            answer = _echo(answer, auth)
        return status, answer

    def _rest(
        self, method: str, path: str, query: dict[str, str], body: Any, auth: str
    ) -> tuple[int, Any]:
        if (
            auth.removeprefix("Bearer ") not in self.tokens
            or self.faults.always_invalid_session
        ):
            self.calls["invalid_session"] += 1
            return 401, [
                {
                    "message": "Session expired or invalid",
                    "errorCode": "INVALID_SESSION_ID",
                }
            ]
        with self.lock:
            self.api_calls += 1
            if self.faults.limit_reached:
                self.calls["limit_exceeded"] += 1
                return 403, [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ]
            if self.faults.unavailable > 0:
                self.faults.unavailable -= 1
                self.calls["unavailable"] += 1
                return 503, "<html><body>Service Unavailable</body></html>"
        try:
            return self._route(method, path, query, body)
        except DmlError as err:
            return err.status, err.as_list()

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        m = re.match(r"/services/data/v[\d.]+/(.*)$", path)
        rest = (m[1] if m else "").rstrip("/")
        parts = [unquote(p) for p in rest.split("/")] if rest else []
        head = parts[0] if parts else ""
        if head == "sobjects" and len(parts) == 1:
            self.calls["sobjects"] += 1
            return 200, {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [
                    {"name": o.name, "custom": o.custom, "keyPrefix": o.key_prefix}
                    for o in self.store.schema.values()
                ],
            }
        if head == "sobjects":
            return self._sobject(method, parts[1:], query, body)
        if head in ("query", "queryAll"):
            self.calls["query"] += 1
            return self._query(parts[1] if len(parts) > 1 else None, query.get("q", ""))
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            self.calls[f"collections_{method.lower()}"] += 1
            return self._collection(method, parts[2:], body)
        if head == "composite" and len(parts) == 1 and method == "POST":
            self.calls["composite"] += 1
            return self._composite(body)
        if head == "limits":
            self.calls["limits"] += 1
            return 200, {
                "DailyApiRequests": {
                    "Max": self.api_max,
                    "Remaining": max(0, self.api_max - self.api_calls),
                }
            }
        raise DmlError("NOT_FOUND", "The requested resource does not exist", status=404)

    def _sobject(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        obj = self.store.obj(parts[0])
        if len(parts) == 2 and parts[1] == "describe":
            self.calls["describe"] += 1
            fields = [
                f.describe()
                for f in obj.fields.values()
                if (obj.name, f.name) not in self.faults.hidden_fields
            ]
            return 200, {
                "name": obj.name,
                "keyPrefix": obj.key_prefix,
                "custom": obj.custom,
                "fields": fields,
            }
        if len(parts) == 1 and method == "POST":
            self.calls["create"] += 1
            self._maybe_lock()
            rec = self.store.create(obj.name, body)
            return 201, {"id": rec["Id"], "success": True, "errors": []}
        if len(parts) == 2 and method == "PATCH":
            self.calls["update"] += 1
            self._maybe_lock()
            self.store.update(obj.name, parts[1], body)
            return 204, None
        if len(parts) == 3 and method == "PATCH":
            self.calls["upsert"] += 1
            self._maybe_lock()
            rec, created = self.store.upsert(obj.name, parts[1], parts[2], body)
            return (201 if created else 200), {
                "id": rec["Id"],
                "success": True,
                "errors": [],
                "created": created,
            }
        if len(parts) == 2 and method == "GET":
            self.calls["get"] += 1
            rec = self.store.records[obj.name].get(parts[1])
            if rec is None:
                raise DmlError(
                    "NOT_FOUND", "The requested resource does not exist", status=404
                )
            return 200, {"attributes": {"type": obj.name}, **rec}
        raise DmlError("NOT_FOUND", "The requested resource does not exist", status=404)

    def _maybe_lock(self) -> None:
        with self.lock:
            if self.faults.lock_rows > 0:
                self.faults.lock_rows -= 1
                self.calls["locked"] += 1
                raise DmlError(
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record",
                )

    def _collection(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        records = (body or {}).get("records", [])
        if len(records) > 200:
            raise DmlError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records",
            )
        # The records are deserialized before any DML: a field the object does
        # not have fails the whole request with 400 INVALID_FIELD ("No such
        # column 'X' on sobject of type Y"), not one item (REST API guide,
        # "Status Codes and Error Responses"; reference/salesforce.md 2.3, 2.5).
        for rec in records:
            obj_name = (rec.get("attributes") or {}).get("type") or (
                parts[0] if parts else ""
            )
            self.store.check_columns(obj_name, rec)
        with self.lock:
            locked = self.faults.lock_rows > 0
            if locked:
                self.faults.lock_rows -= 1
                self.calls["locked"] += 1
        out = []
        for rec in records:
            try:
                if locked:
                    raise DmlError(
                        "UNABLE_TO_LOCK_ROW",
                        "unable to obtain exclusive access to this record",
                    )
                obj = (rec.get("attributes") or {}).get("type") or (
                    parts[0] if parts else ""
                )
                if method == "PATCH" and len(parts) == 2:
                    data = {k: v for k, v in rec.items() if k != parts[1]}
                    saved, created = self.store.upsert(
                        obj, parts[1], str(rec.get(parts[1])), data
                    )
                    out.append(
                        {
                            "id": saved["Id"],
                            "success": True,
                            "errors": [],
                            "created": created,
                        }
                    )
                elif method == "PATCH":
                    saved = self.store.update(obj, rec.get("id", ""), rec)
                    out.append({"id": saved["Id"], "success": True, "errors": []})
                elif method == "POST":
                    saved = self.store.create(obj, rec)
                    out.append({"id": saved["Id"], "success": True, "errors": []})
                else:
                    raise DmlError(
                        "METHOD_NOT_ALLOWED", f"{method} not supported", status=405
                    )
            except DmlError as err:
                out.append({"id": None, "success": False, "errors": [err.as_item()]})
        return 200, out

    def _composite(self, body: Any) -> tuple[int, Any]:
        refs: dict[str, Any] = {}
        out = []
        for sub in body.get("compositeRequest", []):
            raw = json.dumps(sub)
            raw = re.sub(
                r"@\{(\w+)\.(\w+)\}",
                lambda m: str((refs.get(m[1]) or {}).get(m[2], "")),
                raw,
            )
            sub = json.loads(raw)
            url = urlsplit(sub["url"])
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                status, answer = self._route(
                    sub["method"], url.path, q, sub.get("body")
                )
            except DmlError as err:
                status, answer = err.status, err.as_list()
            refs[sub["referenceId"]] = answer if isinstance(answer, dict) else {}
            out.append(
                {
                    "body": answer,
                    "httpHeaders": {},
                    "httpStatusCode": status,
                    "referenceId": sub["referenceId"],
                }
            )
        return 200, {"compositeResponse": out}

    def _query(self, cursor: str | None, soql: str) -> tuple[int, Any]:
        if cursor:
            key, _, offset = cursor.rpartition("-")
            rows = self.cursors.get(key)
            if rows is None:
                raise DmlError("INVALID_QUERY_LOCATOR", "invalid query locator")
            start = int(offset)
        else:
            rows, start = self.store.query(soql), 0
            key = f"01g{secrets.token_hex(6)}"
            self.cursors[key] = rows
        page = rows[start : start + PAGE]
        done = start + PAGE >= len(rows)
        out: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            out["nextRecordsUrl"] = f"/services/data/v59.0/query/{key}-{start + PAGE}"
        return 200, out


class _Handler(BaseHTTPRequestHandler):
    emu: Emulator
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without this, Nagle plus delayed
    # ACKs add ~40 ms to every keep-alive request
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        if url.path.startswith("/services/Soap/u/"):
            status, ctype, text = self.emu.soap_login(raw)
            return self._send(status, text.encode(), ctype, limit=False)
        if url.path == "/services/oauth2/token":
            status, answer = self.emu.oauth_token(raw, self.headers)
            return self._send(
                status, json.dumps(answer).encode(), "application/json", limit=False
            )
        if url.path.rstrip("/") == "/services/data":
            self.emu.calls["versions"] += 1
            versions = [
                {
                    "label": "Winter '24",
                    "url": "/services/data/v59.0",
                    "version": "59.0",
                }
            ]
            return self._send(
                200, json.dumps(versions).encode(), "application/json", limit=False
            )
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._send(
                400,
                b'[{"errorCode":"JSON_PARSER_ERROR","message":"bad JSON"}]',
                "application/json",
            )
        status, answer = self.emu.rest(
            self.command, url.path, query, body, self.headers.get("Authorization", "")
        )
        if isinstance(answer, str):
            return self._send(status, answer.encode(), "text/html")
        data = b"" if status == 204 else json.dumps(answer).encode()
        self._send(status, data, "application/json;charset=UTF-8")

    def _send(
        self, status: int, data: bytes, ctype: str, *, limit: bool = True
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if limit:
            used = (
                self.emu.api_max + 1
                if self.emu.faults.limit_reached
                else self.emu.api_calls
            )
            self.send_header(
                "Sforce-Limit-Info", f"api-usage={used}/{self.emu.api_max}"
            )
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


def _echo(answer: Any, auth: str) -> Any:
    """`answer` with every error message (and an HTML body) quoting `auth`."""
    quote = (
        f" [request: Authorization: {auth}; sessionId={auth.removeprefix('Bearer ')};"
        " X-Amz-Security-Token: FQoGZXIvYXdzEXAMPLETOKEN; Authorization2:"
        " AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261204/us-east-1/sqs/"
        "aws4_request, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024]"
    )
    if isinstance(answer, str):
        return answer + quote
    if isinstance(answer, list):
        return [_echo(item, auth) for item in answer]
    if isinstance(answer, dict):
        out = {k: _echo(v, auth) if k == "errors" else v for k, v in answer.items()}
        if isinstance(out.get("message"), str):
            out["message"] += quote
        return out
    return answer


def _tag(body: str, name: str) -> str:
    m = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", body, re.S)
    return m[1] if m else ""


_SOAP_OK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>https://{host}/services/Soap/m/59.0/{org}</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>
<serverUrl>https://{host}/services/Soap/u/59.0/{org}</serverUrl>
<sessionId>{session}</sessionId><userId>005000000000001AAA</userId>
<userInfo><organizationId>{org}</organizationId><sessionSecondsValid>7200</sessionSecondsValid>
<userName>{user}</userName></userInfo>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com">
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>
<detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>
<sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage>
</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
