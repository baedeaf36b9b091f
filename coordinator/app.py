"""The FastAPI application: wiring of services, routers and the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from coordinator import errors
from coordinator.api import agent, control, health, meetings, readiness, rooms, screens
from coordinator.attendance import AttendanceBook
from coordinator.auth import load_operator_token
from coordinator.database import make_engine, make_sessionmaker, migrate
from coordinator.hub import Hub
from coordinator.media.echo import Echoes
from coordinator.meetings import Schedule
from coordinator.metrics import build_registry
from coordinator.readiness import Readiness, ReadinessCollector
from coordinator.registry import Registry
from coordinator.scheduler import Scheduler
from coordinator.screens import Screens
from coordinator.services import Services
from coordinator.settings import Settings
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
    hub = Hub(registry, book, settings.heartbeat_interval, settings.missed_heartbeats)
    scheduler = Scheduler(schedule, book, hub, registry, settings.scheduler_tick)
    collectors, control_metrics = build_registry(hub, registry, scheduler.next_starts)
    checks = Readiness(
        sessions,
        hub,
        schedule,
        registry,
        settings.readiness_lead_seconds,
        settings.readiness_final_lead_seconds,
        settings.readiness_wait_seconds,
        max(1.0, settings.scheduler_tick),
    )
    await checks.load()
    collectors.register(ReadinessCollector(checks))
    return Services(
        settings, engine, registry, schedule, book, hub, scheduler, collectors, control_metrics, Screens(), checks
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.operator_token = load_operator_token(settings.resolved_operator_token_file)
        services = await build_services(settings)
        app.state.services = services
        app.state.echoes = Echoes()
        await services.scheduler.resume()
        await services.scheduler.tick()
        services.scheduler.start()
        services.readiness.start()
        log.info(
            "coordinator ready: %d rooms enrolled, %d meetings running",
            len(services.registry.rooms),
            len(services.hub.meetings),
        )
        try:
            yield
        finally:
            await services.readiness.stop()
            await app.state.echoes.close()
            await services.scheduler.stop()
            await services.hub.shutdown()
            await services.engine.dispose()
            log.info("coordinator stopped")

    app = FastAPI(
        title="phonghop coordinator",
        version=__version__,
        description="Phòng họp trực tuyến: room registry, meeting schedule, control channel, metrics.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (health, rooms, meetings, screens, control, agent, readiness):
        app.include_router(module.router)
    return app
