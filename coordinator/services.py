"""The coordinator's long-lived parts, built once at start and shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.attendance import AttendanceBook
from coordinator.connections import Connections
from coordinator.dispatch import ControlDispatch
from coordinator.guests.invitations import Invitations
from coordinator.live_meetings import LiveMeetings
from coordinator.metrics import ControlMetrics
from coordinator.ratelimit import TokenBuckets
from coordinator.readiness import ReadinessChecks
from coordinator.registry import Registry
from coordinator.schedule import Schedule
from coordinator.scheduler import Scheduler
from coordinator.screens import Screens
from coordinator.series_relay import SeriesForwarder
from coordinator.settings import Settings
from coordinator.uplink.client import Uplink


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    registry: Registry
    schedule: Schedule
    book: AttendanceBook
    connections: Connections
    live: LiveMeetings
    dispatch: ControlDispatch
    scheduler: Scheduler
    collectors: CollectorRegistry
    control_metrics: ControlMetrics
    screens: Screens
    readiness: ReadinessChecks
    guests: Invitations
    # Control messages per room (api.control), from the settings' burst and rate.
    control_limits: TokenBuckets = field(default_factory=lambda: TokenBuckets(rate=10.0, burst=60))
    uplink: Uplink | None = None  # a commune in a province: its link to the province's meetings
    province_series: SeriesForwarder | None = None  # a commune in a province: its monitoring, passed up
    prometheus_series: SeriesForwarder | None = None  # a province: the communes' monitoring, passed in


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(_services)]
