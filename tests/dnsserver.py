"""A small authoritative DNS server on loopback UDP for DKIM tests.

`DnsServer(records)` answers TXT queries for the names in `records`
(`{"sel1._domainkey.marketplace.aws.": b"v=DKIM1; k=rsa; p=..."}`; a key
`"*._domainkey.marketplace.aws."` answers every selector of that domain)
and NXDOMAIN for anything else, and counts the queries it got. dnspython
builds and parses the packets; mailsync reaches it through `[security]
dns_servers = ["127.0.0.1:PORT"]`, exactly as it reaches a real resolver.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, records: Mapping[str, bytes]) -> None:
        self.records = {k.lower(): v for k, v in records.items()}
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _answer(self, name: str) -> bytes | None:
        if name in self.records:
            return self.records[name]
        _, _, rest = name.partition(".")
        return self.records.get("*." + rest)

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            for question in query.question:
                name = question.name.to_text().lower()
                self.queries.append(name)
                value = self._answer(name)
                if value is None or question.rdtype != dns.rdatatype.TXT:
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                    continue
                # TXT strings are at most 255 bytes (RFC 1035 3.3.14).
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
                text = " ".join('"' + c.decode("ascii") + '"' for c in chunks)
                reply.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "TXT", text)
                )
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()
