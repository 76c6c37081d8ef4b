"""``python -m app.local_server.llama_server``: llama-cpp-python's OpenAI-compatible server, locked down.

``python -m llama_cpp.server`` answers any process on the machine and any web page: its API key is
off unless given, and its CORS middleware allows every origin (``allow_origins=["*"]``, with no
option to turn it off). The local teacher sees conversations unredacted, so this entry point runs
the same FastAPI app (``llama_cpp.server.app.create_app``, the same flags) with:

- the API key llama-cpp-python's own ``api_key`` setting checks on every route, taken from
  ``$XIAOER_TEACHER_SERVER_KEY`` (the environment, not the command line that ``ps`` shows any
  user) and required: no key, no server;
- its CORS middleware removed, so no web page may read an answer;
- Starlette's ``TrustedHostMiddleware`` for 127.0.0.1 and localhost, so a page whose host name
  is made to resolve to 127.0.0.1 (DNS rebinding) is refused too;
- 127.0.0.1 only, whatever ``$HOST`` says.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

KEY_ENV = "XIAOER_TEACHER_SERVER_KEY"
MIN_KEY_CHARS = 32
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


def locked_down_app(
    server_settings: Any,
    model_settings: list[Any],
    api_key: str,
    allowed_hosts: Sequence[str] = ALLOWED_HOSTS,
) -> Any:
    """llama-cpp-python's app with the key required, CORS removed and Host checked."""
    from fastapi.middleware.cors import CORSMiddleware
    from llama_cpp.server.app import create_app
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    server_settings.api_key = api_key
    app = create_app(server_settings=server_settings, model_settings=model_settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not CORSMiddleware]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    api_key = os.environ.pop(KEY_ENV, "")
    if len(api_key) < MIN_KEY_CHARS:
        print(f"refusing to serve without an API key in ${KEY_ENV}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m app.local_server.llama_server")
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    if args.api_key is not None:
        print("the API key comes from the environment, not --api_key", file=sys.stderr)
        return 2
    server_settings = parse_model_from_args(ServerSettings, args)
    if server_settings.host not in ALLOWED_HOSTS:
        print(
            f"the local teacher listens on 127.0.0.1 only, not {server_settings.host}",
            file=sys.stderr,
        )
        return 2
    model_settings = [parse_model_from_args(ModelSettings, args)]
    app = locked_down_app(server_settings, model_settings, api_key)
    uvicorn.run(app, host="127.0.0.1", port=server_settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
