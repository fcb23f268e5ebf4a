"""The web console (`/console/…`), served by the API's process: `mount(app)`."""

from waybillguard.entrypoints.web.console import api_router, mount, router

__all__ = ["api_router", "mount", "router"]
