"""`python -m tests.web.serve PORT`: the API with the console mounted, on loopback, for
the home named by WAYBILLGUARD_HOME (what the lead's create_app will do once it calls
`mount`)."""

from __future__ import annotations

import sys

import uvicorn

from waybillguard.config import load_settings
from waybillguard.entrypoints.http.app import create_app
from waybillguard.entrypoints.web import mount


def main() -> None:
    app = create_app(load_settings())
    mount(app)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
