"""Cloud teachers: one ``CloudTeacher`` per API family, and the saved choice of teacher.

- ``OpenAICompatibleTeacher``: any ``/v1/chat/completions`` server (DeepSeek, Qwen/DashScope,
  vLLM, Ollama, the local llama.cpp teacher) through the ``openai`` SDK.
- ``GeminiTeacher``: Google's Gemini API through ``google-genai``.
- ``local_teacher(base_url)``: the llama.cpp teacher on 127.0.0.1
  (``app.local_server.teacher_server``). It is sent conversations unredacted, so every request
  first checks that ``base_url`` is the server Xiaoer started (its state file) and carries that
  server's per-start key; anything else is refused.

Cloud API keys are kept per provider and host (``app.cloud.secrets``): a key saved for one
``base_url`` is never sent to another, and plain ``http://`` is refused except on loopback.

The SDKs' own retries are switched off: the layer above decides when to retry
``TeacherUnavailable``, the same way for every provider. Error messages carry the status and the server's words with the API key
scrubbed out, and SDK exceptions are not chained (their text may quote the request).
"""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from app.cloud.teacher import (
    CloudTeacher,
    LocalTeacherNotRunning,
    TeacherAnswer,
    TeacherRejected,
    TeacherRequest,
    TeacherUnavailable,
    Usage,
)
from app.errors import XiaoerError
from app.local_server import teacher_server as server
from app.settings_file import SettingsFileError, read_sections, settings_path, write_section

if TYPE_CHECKING:
    from google import genai
    from openai import OpenAI

ProviderName = Literal["local", "gemini", "openai-compatible"]
PROVIDERS: tuple[str, ...] = get_args(ProviderName)
# The paper's teacher was Gemini 1.5 Pro, which Google has shut down, and 2.5 Pro and 2.5 Flash
# are deprecated as well (Gemini API deprecations page, November 2026). Gemini 3.8 Flash is the
# replacement Google names for 2.5 Pro and its newest stable Flash: Pro-class answers at Flash
# prices, which suits labeling thousands of short replies. `xiaoer teacher config --model`
# chooses another.
DEFAULT_GEMINI_MODEL = "gemini-3.8-flash"
# Gemini 3 models think before answering, and the thinking counts against maxOutputTokens: a
# 256-token reply budget could be spent before the reply starts. They get the lowest level every
# Gemini 3 model accepts (3.7/3.8 Flash refuse MINIMAL) and this many extra tokens to think in.
GEMINI_THINKING_HEADROOM = 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOCAL_MIN_TIMEOUT = 180.0
# Gateways answer these when busy or slow; trying again later can succeed.
RETRYABLE_STATUS = {408, 425, 429}
# Gemini finish reasons that mean the answer was withheld, not merely cut short.
GEMINI_REFUSALS = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
}


class TeacherConfigError(XiaoerError):
    """The teacher settings are invalid; the message names the field."""


def _scrub(text: str, secret: str | None, limit: int = 300) -> str:
    """Server text for an error message: the key removed, shortened to one readable line."""
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(body: object, fallback: str) -> str:
    """The human part of an OpenAI-style error body (``{"error": {"message": ...}}``)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return fallback


def _retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or 500 <= status < 600


def _transport_errors() -> tuple[type[BaseException], ...]:
    # google-genai 1.x raises httpx errors, 3.x httpx2 ones; whichever is installed is used.
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


def _cost(usage: Usage, per_1k_input: float, per_1k_output: float) -> float:
    return usage.input_tokens / 1000 * per_1k_input + usage.output_tokens / 1000 * per_1k_output


def is_loopback_url(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "") in LOOPBACK_HOSTS


def is_loopback_host(host: str) -> bool:
    """localhost, or an address in 127.0.0.0/8 or ::1 (traffic that never leaves this machine)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(base_url: str) -> None:
    """Refuse ``http://`` to any host but this machine: the API key and the (redacted)
    conversations would cross the network in clear text."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise TeacherConfigError(f"base_url must start with http:// or https://: {base_url}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise TeacherConfigError(
            f"base_url {base_url} uses plain http:// to another machine; use https:// (http:// "
            "is allowed only for a server on this machine, 127.0.0.1)"
        )


# --- OpenAI-compatible servers -------------------------------------------------------------------


class OpenAICompatibleTeacher:
    """A ``/v1/chat/completions`` endpoint; the API key is held privately and never shown."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        provider: str = "openai-compatible",
        is_local: bool = False,
        price_per_1k_input: float = 0.0,
        price_per_1k_output: float = 0.0,
    ) -> None:
        import openai

        if is_local and not is_loopback_url(base_url):
            raise TeacherConfigError(f"A local teacher must be on 127.0.0.1, not {base_url}")
        check_transport(base_url)
        self.base_url = base_url
        self.model = model
        self.provider = provider
        self.is_local = is_local
        self.timeout = timeout
        self.price_per_1k_input = price_per_1k_input
        self.price_per_1k_output = price_per_1k_output
        self._api_key = api_key or None
        self._client: OpenAI = openai.OpenAI(
            base_url=base_url,
            # Always explicit: with None the SDK would send $OPENAI_API_KEY to whatever server
            # base_url names. Keyless servers (llama.cpp, Ollama, vLLM) accept any token.
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=0,
            # A local teacher must not be reached through an HTTP(S)_PROXY from the environment.
            http_client=openai.DefaultHttpxClient(trust_env=False) if is_local else None,
        )

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleTeacher(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r}, api_key={'***' if self._api_key else None})"
        )

    def cost(self, usage: Usage) -> float:
        """The price of one call from the per-1000-token prices, in the prices' currency."""
        return _cost(usage, self.price_per_1k_input, self.price_per_1k_output)

    def _local_key(self) -> str:
        """The local teacher's key, checked before every request: the server must still be the
        one Xiaoer started (it may have been restarted with a new key, or replaced)."""
        try:
            key = server.verified_key(self.base_url)
        except server.TeacherServerNotRunning as exc:
            raise LocalTeacherNotRunning(str(exc)) from None
        except server.TeacherServerRefused as exc:
            raise TeacherRejected(str(exc)) from None
        self._api_key = key  # scrubbed from error messages like any key
        return key

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        import openai

        messages: Any = [{"role": role, "content": text} for role, text in request.messages]
        where = f"{self.provider} teacher at {self.base_url}"
        headers = {"Authorization": f"Bearer {self._local_key()}"} if self.is_local else None
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                extra_headers=headers,
            )
        except openai.APITimeoutError:
            raise TeacherUnavailable(
                f"The {where} did not answer within {self.timeout:g} s"
            ) from None
        except openai.APIConnectionError:
            raise TeacherUnavailable(f"Could not connect to the {where}") from None
        except openai.APIStatusError as exc:
            detail = _scrub(_server_message(exc.body, exc.message), self._api_key)
            if _retryable(exc.status_code):
                raise TeacherUnavailable(
                    f"The {where} is busy or failing (HTTP {exc.status_code}): {detail}"
                ) from None
            if exc.status_code in (401, 403):
                raise TeacherRejected(
                    f"The {where} refused the API key (HTTP {exc.status_code}): {detail}. "
                    "Check the key saved for this provider."
                ) from None
            raise TeacherRejected(
                f"The {where} rejected the request (HTTP {exc.status_code}): {detail}"
            ) from None
        except (openai.OpenAIError, ValueError) as exc:
            # APIResponseValidationError, or a 200 whose body is not JSON (JSONDecodeError).
            raise TeacherRejected(
                f"The {where} sent a malformed answer ({type(exc).__name__}): "
                f"{_scrub(str(exc), self._api_key)}"
            ) from None
        return self._answer(response, where)

    def _answer(self, response: Any, where: str) -> TeacherAnswer:
        # Servers that answer 200 with something other than JSON come back as a plain string.
        choices = getattr(response, "choices", None)
        if not choices:
            raise TeacherRejected(f"The {where} sent an answer without choices (malformed)")
        choice = choices[0]
        if choice.finish_reason == "content_filter":
            raise TeacherRejected(f"The {where} withheld its answer (content filter)")
        text = (choice.message.content or "").strip()
        if not text:
            raise TeacherRejected(f"The {where} sent an empty answer")
        usage = response.usage
        return TeacherAnswer(
            text=text,
            provider=self.provider,
            model=response.model or self.model,
            usage=Usage(
                input_tokens=(usage.prompt_tokens or 0) if usage else 0,
                output_tokens=(usage.completion_tokens or 0) if usage else 0,
            ),
        )


def served_model(base_url: str, timeout: float = 2.0, api_key: str | None = None) -> str:
    """The id of the model a server on this machine serves (its ``/v1/models``)."""
    served = server.served_models(base_url, timeout, api_key)
    if served:
        return served[0]
    busy = server.running_model(base_url)
    if busy is None:
        raise LocalTeacherNotRunning(
            f"The local teacher at {base_url} is not answering; start it with `xiaoer teacher serve`"
        )
    return busy


def local_teacher(
    base_url: str, model: str | None = None, timeout: float = 120.0
) -> OpenAICompatibleTeacher:
    """The llama.cpp teacher on 127.0.0.1; ``model`` defaults to the file the server serves.

    The default timeout is long because a CPU-only 1.5B model may need a minute for a long reply.
    Refused (TeacherConfigError) when something else listens at ``base_url``: only the server
    Xiaoer started, as its state file shows, is sent conversations unredacted. When nothing listens
    yet and ``model`` is given, the teacher is made, and each request checks again.
    """
    if not is_loopback_url(base_url):
        raise TeacherConfigError(f"A local teacher must be on 127.0.0.1, not {base_url}")
    key: str | None = None
    try:
        key = server.verified_key(base_url)
    except server.TeacherServerRefused as exc:
        raise TeacherConfigError(str(exc)) from None
    except server.TeacherServerNotRunning as exc:
        if model is None:
            raise LocalTeacherNotRunning(str(exc)) from None
    return OpenAICompatibleTeacher(
        base_url=base_url,
        model=model or served_model(base_url, api_key=key),
        timeout=timeout,
        provider="local",
        is_local=True,
    )


# --- Gemini -------------------------------------------------------------------------------------


class GeminiTeacher:
    """Google Gemini through ``google-genai`` (the old ``google-generativeai`` is end of life)."""

    provider = "gemini"
    is_local = False

    def __init__(
        self,
        model: str = DEFAULT_GEMINI_MODEL,
        api_key: str | None = None,
        timeout: float = 30.0,
        base_url: str | None = None,
        price_per_1k_input: float = 0.0,
        price_per_1k_output: float = 0.0,
    ) -> None:
        from google import genai
        from google.genai import types

        if base_url:
            check_transport(base_url)
        self.model = model
        self.timeout = timeout
        self.base_url = base_url
        self.price_per_1k_input = price_per_1k_input
        self.price_per_1k_output = price_per_1k_output
        self._api_key = api_key or None
        self._client: genai.Client | None = None
        if self._api_key:
            self._client = genai.Client(
                # Explicit, so GOOGLE_GENAI_USE_VERTEXAI in the environment cannot reroute calls.
                vertexai=False,
                api_key=self._api_key,
                http_options=types.HttpOptions(
                    base_url=base_url,
                    # Pinned: the SDK's default version differs between releases.
                    api_version="v1beta",
                    timeout=max(1, int(timeout * 1000)),  # milliseconds
                    retry_options=types.HttpRetryOptions(attempts=1),
                ),
            )

    def __repr__(self) -> str:
        return (
            f"GeminiTeacher(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={'***' if self._api_key else None})"
        )

    def cost(self, usage: Usage) -> float:
        """The price of one call from the per-1000-token prices, in the prices' currency."""
        return _cost(usage, self.price_per_1k_input, self.price_per_1k_output)

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        from google.genai import errors, types

        if self._client is None:
            raise TeacherRejected(
                "No API key is set for Gemini; save one in the settings or set XIAOER_GEMINI_API_KEY"
            )
        system = [text for role, text in request.messages if role == "system"]
        contents = [
            types.Content(
                role="model" if role == "assistant" else "user", parts=[types.Part(text=text)]
            )
            for role, text in request.messages
            if role != "system"
        ]
        if not contents:
            raise TeacherRejected("The request to Gemini has no user message")
        thinks = self.model.startswith("gemini-3")
        config = types.GenerateContentConfig(
            system_instruction="\n\n".join(system) if system else None,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens + (GEMINI_THINKING_HEADROOM if thinks else 0),
            thinking_config=(
                types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW) if thinks else None
            ),
        )
        try:
            response = self._client.models.generate_content(
                model=self.model, contents=contents, config=config
            )
        except errors.APIError as exc:
            code = int(exc.code or 0)
            detail = _scrub(f"{exc.status or ''} {exc.message or ''}".strip(), self._api_key)
            if _retryable(code):
                raise TeacherUnavailable(
                    f"Gemini is busy or failing (HTTP {code}): {detail}"
                ) from None
            # Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
            if code in (401, 403) or "API KEY" in detail.upper().replace("_", " "):
                raise TeacherRejected(
                    f"Gemini refused the API key (HTTP {code}): {detail}. "
                    "Check the key saved for Gemini."
                ) from None
            raise TeacherRejected(f"Gemini rejected the request (HTTP {code}): {detail}") from None
        except _transport_errors() as exc:
            name = type(exc).__name__
            if "Timeout" in name:
                raise TeacherUnavailable(
                    f"Gemini did not answer within {self.timeout:g} s"
                ) from None
            raise TeacherUnavailable(f"Could not connect to Gemini ({name})") from None
        except ValueError as exc:
            # A 200 whose body is not a GenerateContentResponse (JSON or schema errors).
            raise TeacherRejected(
                f"Gemini sent a malformed answer ({type(exc).__name__})"
            ) from None
        return self._answer(response)

    def _answer(self, response: Any) -> TeacherAnswer:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise TeacherRejected(
                f"Gemini blocked the prompt ({_enum_name(feedback.block_reason)})"
            )
        if not response.candidates:
            raise TeacherRejected("Gemini sent no candidates")
        candidate = response.candidates[0]
        reason = _enum_name(candidate.finish_reason) if candidate.finish_reason else ""
        if reason in GEMINI_REFUSALS:
            raise TeacherRejected(f"Gemini withheld its answer (finish reason {reason})")
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        # Thought summaries are the model's notes, not the reply.
        text = "".join(p.text for p in parts if p.text and not p.thought).strip()
        if not text:
            raise TeacherRejected("Gemini sent an empty answer")
        meta = response.usage_metadata
        # Thinking tokens are billed as output tokens, so they count in the cost shown.
        output = (
            ((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0
        )
        return TeacherAnswer(
            text=text,
            provider=self.provider,
            model=self.model,
            usage=Usage(
                input_tokens=(meta.prompt_token_count or 0) if meta else 0,
                output_tokens=output,
            ),
        )


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


# --- the saved choice of teacher ----------------------------------------------------------------


@dataclass(frozen=True)
class TeacherConfig:
    """Which teacher to ask. Saved as JSON in the data dir; API keys live in the keyring only."""

    provider: ProviderName = field(
        default="local", metadata={"help": "local, gemini or openai-compatible"}
    )
    model: str = field(
        default="",
        metadata={
            "help": f"model name; empty: {DEFAULT_GEMINI_MODEL} for gemini, the served file for "
            "local"
        },
    )
    base_url: str = field(
        default="",
        metadata={
            "help": "API root, e.g. https://api.deepseek.com/v1; empty for local: the running "
            "`xiaoer teacher serve`"
        },
    )
    timeout: float = field(
        default=30.0,
        metadata={"help": "seconds one call may take (the local teacher gets at least 180)"},
    )
    price_per_1k_input: float = field(
        default=0.0, metadata={"help": "price of 1000 prompt tokens (for the cost display)"}
    )
    price_per_1k_output: float = field(
        default=0.0, metadata={"help": "price of 1000 generated tokens"}
    )

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise TeacherConfigError(
                f"Unknown teacher provider '{self.provider}'; use one of {', '.join(PROVIDERS)}"
            )
        if not self.timeout > 0:
            raise TeacherConfigError(f"timeout must be positive, got {self.timeout}")
        if self.price_per_1k_input < 0 or self.price_per_1k_output < 0:
            raise TeacherConfigError("Prices per 1000 tokens cannot be negative")
        if self.base_url:
            check_transport(self.base_url)
        if self.provider == "openai-compatible" and not (self.base_url and self.model):
            raise TeacherConfigError(
                "An openai-compatible teacher needs base_url and model, "
                "e.g. https://api.deepseek.com/v1 and deepseek-chat"
            )
        if self.provider == "local" and self.base_url and not is_loopback_url(self.base_url):
            raise TeacherConfigError(
                f"A local teacher must be on 127.0.0.1, not {self.base_url}; "
                "use openai-compatible for a server on another machine"
            )


def config_path() -> Path:
    """The settings file; the teacher is its ``teacher`` section (``app.settings_file``)."""
    return settings_path()


def load_config() -> TeacherConfig:
    """The saved teacher settings, or the defaults (the local teacher) when none are saved."""
    path = config_path()
    try:
        raw = read_sections()["teacher"]
    except SettingsFileError as exc:
        raise TeacherConfigError(str(exc)) from None
    known = {f.name for f in fields(TeacherConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TeacherConfigError(
            f"The teacher settings {path} have unknown fields {unknown} (API keys belong in the "
            "keyring, not in this file); remove them"
        )
    try:
        return TeacherConfig(**raw)
    except TypeError as exc:
        raise TeacherConfigError(f"The teacher settings {path} are invalid: {exc}") from None


def save_config(config: TeacherConfig) -> Path:
    """Write the section atomically; the dataclass has no field a secret could go into."""
    return write_section("teacher", asdict(config))


def make_teacher(config: TeacherConfig) -> CloudTeacher:
    """The teacher the settings describe, with its key from the keyring (or environment)."""
    from app.cloud import secrets

    if config.provider == "local":
        base_url = config.base_url or server.running_server()
        if not base_url:
            raise LocalTeacherNotRunning(
                "The local teacher is not running; start it with `xiaoer teacher serve`"
            )
        # A CPU-only 1.5B teacher on a busy machine can need minutes for a long prompt; a local
        # call costs nothing, so the timeout only has to catch a server that hangs.
        timeout = max(config.timeout, LOCAL_MIN_TIMEOUT)
        return local_teacher(base_url, config.model or None, timeout=timeout)
    if config.provider == "gemini":
        # The key saved for this host only: a changed base_url does not take the key along.
        key = secrets.get_api_key("gemini", config.base_url or None)
        if not key:
            raise TeacherRejected(
                f"No API key is set for Gemini at {secrets.key_host('gemini', config.base_url)}; "
                f"save one in the settings or set {secrets.env_var('gemini')}"
            )
        return GeminiTeacher(
            model=config.model or DEFAULT_GEMINI_MODEL,
            api_key=key,
            timeout=config.timeout,
            base_url=config.base_url or None,
            price_per_1k_input=config.price_per_1k_input,
            price_per_1k_output=config.price_per_1k_output,
        )
    key = secrets.get_api_key(config.provider, config.base_url)
    if key is None and secrets.unbound_key_exists(config.provider):
        host = secrets.key_host(config.provider, config.base_url)
        raise TeacherRejected(
            f"The {config.provider} key an earlier Xiaoer saved is not tied to a host, so it is not "
            f"sent to {host}: save it again (settings, or `xiaoer teacher set-key --provider "
            f"{config.provider}`); it is then kept for {host} only"
        )
    return OpenAICompatibleTeacher(
        base_url=config.base_url,
        model=config.model,
        api_key=key,
        timeout=config.timeout,
        provider=config.provider,
        price_per_1k_input=config.price_per_1k_input,
        price_per_1k_output=config.price_per_1k_output,
    )
