"""The HTTP API (:mod:`streams.live.api`) served as Faust web views.

One :class:`~faust.web.View` per endpoint, each answering from the
:class:`~streams.live.api.WorkerApi` it is bound to by :func:`register`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faust
from faust.web import Request, Response, View

from streams.live.api import Answer, WorkerApi


class _ApiView(View):
    api: ClassVar[WorkerApi]

    def answer(self, a: Answer) -> Response:
        if a.raw is not None:
            return self.bytes(a.raw, status=a.status, content_type=a.content_type)
        return self.json(a.json, status=a.status)


class MetricsView(_ApiView):
    async def get(self, request: Request) -> Response:
        return self.answer(self.api.metrics())


class HealthView(_ApiView):
    async def get(self, request: Request) -> Response:
        return self.answer(self.api.health())


class ReadyView(_ApiView):
    async def get(self, request: Request) -> Response:
        return self.answer(self.api.ready())


class CustomerView(_ApiView):
    async def get(self, request: Request, customer_id: str) -> Response:
        return self.answer(await self.api.customer(customer_id, request.headers, request.query))


ROUTES: tuple[tuple[str, type[_ApiView]], ...] = (
    ("/metrics", MetricsView),
    ("/health", HealthView),
    ("/ready", ReadyView),
    ("/customers/{customer_id}", CustomerView),
)


def register(app: faust.App, api: WorkerApi) -> None:
    """Serve ``api`` on the app's web server."""
    for path, view in ROUTES:
        bound: Any = type(view.__name__, (view,), {"api": api, "__module__": __name__})
        app.page(path)(bound)
