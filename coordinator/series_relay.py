"""A commune's monitoring series carried up to the province's Prometheus by the coordinators.

The commune's Prometheus remote-writes to its own coordinator on the loopback; the coordinator passes
each batch on over HTTPS with the commune's province token (the one its uplink uses); the province's
coordinator checks that token and hands the batch to its own Prometheus on its loopback. So monitoring
needs no secret, certificate or open port of its own, and a re-issued token applies to both links.

Prometheus keeps a batch and retries it while the answer is 5xx, and drops it on 4xx. A province that
cannot be reached, is busy (429), or refuses the commune's token, is answered 503 so that nothing is lost while
the link or the token is being fixed; a 4xx about the data itself (out of order, malformed) is passed
back as it is, since sending it again would change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter

from phonghop.dialing import tls_context

log = logging.getLogger(__name__)

# What Prometheus's remote-write protocol says about a batch; passed on unchanged.
PASSED_HEADERS = ("content-encoding", "content-type", "x-prometheus-remote-write-version")
TIMEOUT_SECONDS = 20.0  # below Prometheus's own remote_timeout (30 s), so it hears our answer
MAX_BATCH_BYTES = 2_000_000  # a batch is a few KB to a few hundred KB (snappy-compressed protobuf)
# The province answers these when the token is not (or no longer) the commune's: keep the data.
CREDENTIAL_REFUSALS = {401, 403, 404}


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes
    result: str  # "sent", "refused" (the receiver rejected the data) or "held" (to be retried)


class SeriesForwarder:
    """Passes remote-write batches to one receiver, with an optional bearer token read from a file."""

    def __init__(
        self, url: str, what: str, batches: Counter, token_file: Path | None = None, ca_file: Path | None = None
    ) -> None:
        self.url = url
        self.what = what  # "the province" / "the province's Prometheus", for messages
        self._batches = batches
        self._token_file = token_file
        verify = tls_context(ca_file) if url.startswith("https:") else True
        self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, verify=verify)
        self._failing = False

    async def forward(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        outcome = await self._forward(body, headers)
        self._batches.labels(outcome.result).inc()
        return outcome

    async def _forward(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        passed = {name: headers[name] for name in PASSED_HEADERS if name in headers}
        if self._token_file is not None:
            try:
                token = self._token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                return self._held(f"cannot read the province token from {self._token_file} ({exc.strerror})")
            passed["authorization"] = f"Bearer {token}"
        try:
            response = await self._client.post(self.url, content=body, headers=passed)
        except httpx.HTTPError as exc:
            return self._held(f"{self.what} did not answer ({exc.__class__.__name__}: {exc})")
        if response.status_code in CREDENTIAL_REFUSALS and self._token_file is not None:
            return self._held(
                f"{self.what} refused the commune's token ({response.status_code}: {response.text[:200]}); "
                "re-run playbooks/province.yml to enrol the commune again"
            )
        if response.status_code >= 500 or response.status_code == 429:
            return self._held(f"{self.what} answered {response.status_code}: {response.text[:200]}")
        if self._failing:
            log.info("series reach %s again", self.what)
            self._failing = False
        if response.is_success:
            return Outcome(response.status_code, response.content, "sent")
        log.warning("%s refused a batch of series (%d): %s", self.what, response.status_code, response.text[:200])
        return Outcome(response.status_code, response.content, "refused")

    def _held(self, reason: str) -> Outcome:
        if not self._failing:  # once per outage: Prometheus retries every few seconds
            log.warning("series held back for %s, Prometheus will send them again: %s", self.what, reason)
            self._failing = True
        return Outcome(503, f"{reason}\n".encode(), "held")

    async def close(self) -> None:
        await self._client.aclose()


def batch_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "phonghop_series_batches",
        "Monitoring batches passed on towards the province's Prometheus, by result "
        "(sent; refused: the receiver rejected the data; held: Prometheus sends them again)",
        ["result"],
        registry=registry,
    )
