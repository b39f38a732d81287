"""The web chat page (``GET /`` from a browser) and the live dashboard (``GET /dashboard``).

Both are static files of this package talking to the public API like any other client; the
server adds only what a browser cannot keep by itself: conversations in SQLite in the store's
home (:mod:`.conversations`) and a server-sent-events feed of the runtime's state
(:mod:`.dashboard`). ``serve --no-web`` leaves the router out.
"""

from .routes import ROOT_TEXT, WebState, wants_html, web_router

__all__ = ["ROOT_TEXT", "WebState", "wants_html", "web_router"]
