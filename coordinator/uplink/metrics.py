"""The uplink's state for /metrics: is the province reachable, does its media arrive, how often it reconnected."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.uplink.client import UplinkState


class UplinkCollector(Collector):
    def __init__(self, state: UplinkState, commune: str) -> None:
        self._state = state
        self._commune = commune

    def collect(self) -> Iterator[Metric]:
        state, labels = self._state, [self._commune]
        up = GaugeMetricFamily(
            "phonghop_uplink_up", "1 while the control channel to the province is open", labels=["commune"]
        )
        up.add_metric(labels, 1.0 if state.up else 0.0)
        media = GaugeMetricFamily(
            "phonghop_uplink_media_live",
            "1 while the province meeting's media arrives on the uplink peer",
            labels=["commune"],
        )
        media.add_metric(labels, 1.0 if state.media_live else 0.0)
        reconnects = CounterMetricFamily(
            "phonghop_uplink_reconnects",
            "Control sessions to the province after the first one (each one a reconnect)",
            labels=["commune"],
        )
        reconnects.add_metric(labels, float(max(0, state.sessions - 1)))
        peers = CounterMetricFamily(
            "phonghop_uplink_peers", "Media peers opened to the province (each one an offer)", labels=["commune"]
        )
        peers.add_metric(labels, float(state.peers))
        yield from (up, media, reconnects, peers)
