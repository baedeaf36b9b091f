"""The FastAPI application: wiring of services, routers and the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator import errors, heap
from coordinator.api import agent, calendar, control, docs, health, meetings, readiness, rooms, screens, series
from coordinator.attendance import AttendanceBook
from coordinator.auth import load_operator_token
from coordinator.connections import Connections
from coordinator.database import AsyncSession, make_engine, make_sessionmaker, migrate
from coordinator.dispatch import ControlDispatch
from coordinator.guests import channel as guest_channel
from coordinator.guests.invitations import Invitations
from coordinator.http_guard import HttpGuard
from coordinator.live_meetings import LiveMeetings
from coordinator.media.echo import Echoes
from coordinator.metrics import build_registry
from coordinator.ratelimit import TokenBuckets
from coordinator.readiness import ReadinessChecks
from coordinator.readiness_store import ReadinessStore
from coordinator.registry import Registry
from coordinator.schedule import Schedule
from coordinator.scheduler import Scheduler
from coordinator.screens import Screens
from coordinator.series_relay import SeriesForwarder, batch_counter
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator.uplink.client import Uplink
from coordinator.uplink.metrics import UplinkCollector
from coordinator.uplink.relayed import RelayedMeeting
from coordinator.web import site as web
from phonghop import __version__

log = logging.getLogger(__name__)


async def build_services(settings: Settings) -> Services:
    url = settings.resolved_database_url
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    registry = Registry(sessions)
    await registry.load()
    book = AttendanceBook(sessions)
    schedule = Schedule(sessions, registry)
    connections = Connections(registry, settings.heartbeat_interval, settings.missed_heartbeats)
    live = LiveMeetings(
        connections,
        book,
        settings.resolved_recordings_dir,
        settings.recording_piece_seconds,
        settings.recording_min_free_mb * 1048576,
    )
    connections.listeners.append(live)
    scheduler = Scheduler(schedule, book, live, connections, registry, settings.scheduler_tick)
    store = ReadinessStore(sessions)
    await store.load()
    collectors, control_metrics = build_registry(
        connections, live, registry, scheduler.next_starts, store, settings.backup_status_file
    )
    checks = ReadinessChecks(
        store,
        connections,
        schedule,
        registry,
        settings.readiness_lead_seconds,
        settings.readiness_final_lead_seconds,
        settings.readiness_wait_seconds,
        max(1.0, settings.scheduler_tick),
        settings.readiness_min_seconds,
    )
    services = Services(
        settings,
        engine,
        registry,
        schedule,
        book,
        connections,
        live,
        ControlDispatch(connections, live),
        scheduler,
        collectors,
        control_metrics,
        Screens(),
        checks,
        Invitations(sessions),
        TokenBuckets(rate=settings.control_messages_per_second, burst=settings.control_message_burst),
    )
    batches = batch_counter(collectors)
    if settings.province_url:
        services.uplink = province_uplink(settings, sessions, services)
        collectors.register(UplinkCollector(services.uplink.state, settings.commune_id))
        services.province_series = SeriesForwarder(
            f"{settings.province_url.rstrip('/')}/api/v1/rooms/{settings.commune_id}/series",
            "the province",
            batches,
            settings.province_token_file,
            settings.province_ca_file,
        )
    if settings.prometheus_url:
        services.prometheus_series = SeriesForwarder(
            f"{settings.prometheus_url.rstrip('/')}/api/v1/write", "the province's Prometheus", batches
        )
    return services


def province_uplink(settings: Settings, sessions: async_sessionmaker[AsyncSession], services: Services) -> Uplink:
    """The commune's part in its province's meetings (settings checked all three are given)."""
    assert settings.province_token_file is not None
    if settings.province_source in services.registry.rooms:
        log.error(
            "a room is enrolled as %r, the name the province's chair has inside this commune; "
            "remove it or set PHONGHOP_PROVINCE_SOURCE to another name",
            settings.province_source,
        )
    relayed = RelayedMeeting(
        settings.commune_id,
        settings.province_source,
        settings.province_fallback_room or None,
        sessions,
        services.schedule,
        services.scheduler,
        services.live,
        services.registry,
    )
    return Uplink(
        settings.province_url,
        settings.province_token_file,
        settings.commune_id,
        relayed,
        settings.heartbeat_interval,
        settings.province_ca_file,
        settings.province_budget_kbps,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.operator_token = load_operator_token(settings.resolved_operator_token_file)
        app.state.read_token = load_operator_token(settings.resolved_read_token_file, "read-only token")
        app.state.calendar_secret = load_operator_token(settings.calendar_secret_file, "calendar feed secret")
        services = await build_services(settings)
        app.state.services = services
        app.state.web = await web.start(services)
        app.state.echoes = Echoes()
        await services.scheduler.resume()
        await services.scheduler.tick()
        services.scheduler.start()
        services.readiness.start()
        uplink_stop = asyncio.Event()
        uplink_task = asyncio.create_task(services.uplink.run(uplink_stop), name="uplink") if services.uplink else None
        trim_task = asyncio.create_task(heap.trim_forever(), name="heap trim")
        log.info(
            "coordinator ready: %d rooms enrolled, %d meetings running",
            len(services.registry.rooms),
            len(services.live.meetings),
        )
        try:
            yield
        finally:
            trim_task.cancel()
            uplink_stop.set()
            if uplink_task is not None:
                await uplink_task
            await services.readiness.stop()
            await app.state.echoes.close()
            await services.scheduler.stop()
            await services.live.shutdown()
            await services.connections.shutdown()
            for forwarder in (services.province_series, services.prometheus_series):
                if forwarder is not None:
                    await forwarder.close()
            await services.engine.dispose()
            log.info("coordinator stopped")

    app = FastAPI(
        title="phonghop coordinator",
        version=__version__,
        description="Phòng họp trực tuyến: room registry, meeting schedule, control channel, metrics.",
        lifespan=lifespan,
        # The API documentation needs a credential too (coordinator.api.docs).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    for module in (health, docs, rooms, meetings, calendar, screens, control, agent, readiness, series):
        app.include_router(module.router)
    app.include_router(guest_channel.router)
    web.install(app, settings)
    app.add_middleware(HttpGuard)  # the outermost: before sessions, routing and any body parsing
    return app
