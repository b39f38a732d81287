"""What the web page's routes share, kept on the app (``app.state.web``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from .assets import Assets
from .conversations import ConversationStore
from .dashboard import DashboardFeed

if TYPE_CHECKING:
    from ...serving import Service
    from ..guard import ServerState
    from ..metrics import HttpMetrics

__all__ = ["CONVERSATIONS_FILE", "WebDep", "WebState", "web_of"]

CONVERSATIONS_FILE = "conversations.db"


@dataclass
class WebState:
    """What the page's routes share, kept on the app (``app.state.web``)."""

    service: Service
    state: ServerState
    assets: Assets
    feed: DashboardFeed
    conversations: ConversationStore

    @classmethod
    def build(cls, service: Service, metrics: HttpMetrics, state: ServerState) -> WebState:
        return cls(service, state, Assets(), DashboardFeed(service.manager, metrics, state),
                   ConversationStore(_home(service) / CONVERSATIONS_FILE))


async def web_of(request: Request) -> WebState:  # async: no worker-thread hop
    return request.app.state.web  # type: ignore[no-any-return]


WebDep = Annotated[WebState, Depends(web_of)]


def _home(service: Service) -> Path:
    root = getattr(service.store, "root", None)
    if root is None:
        from ...config import home_dir

        root = home_dir()
    return Path(root)
