"""The one place `describe` talks to a chat server: the openai call, its retries, its faults.

The SDK retries rate limits (429), server errors (5xx), timeouts and dropped connections
with exponential backoff (``max_retries``). What is left when those retries run out, or
when a 200 carries a body that is not a chat completion (truncated JSON, no ``choices``,
an HTML page), leaves this module as one of two TextErrors whose message is the cause
alone, in one line; the caller adds which class and question it was:

- ``LLMCallError``: no answer at all (status code, timeout, connection); asking again now
  is pointless, so the caller stops and tells how to resume.
- ``MalformedBodyError``: an answer that cannot be read; the caller may ask again.

The body is read from the raw HTTP response and parsed here, not by the SDK, so a broken
body is reported as such and the cache stores exactly what the server sent. The SDK is
imported on first use only: planning and config validation do not need it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from microclip.errors import TextError

# Status codes the SDK retries itself (before giving up with an APIStatusError).
_RETRIED_STATUS = frozenset({408, 409, 429})
_STATUS_HINTS = {
    401: "check OPENAI_API_KEY",
    403: "check the key's access to this model",
    404: "check the model name and OPENAI_BASE_URL",
    429: "rate limited or out of quota",
}


class LLMCallError(TextError):
    """A request got no answer: retries ran out, or the server refused it."""


class MalformedBodyError(TextError):
    """The server answered, but the body is not a chat completion."""


class ChatClient:
    """An openai client with the suite's retry and timeout settings and its error wording."""

    def __init__(self, *, max_retries: int, timeout_s: float) -> None:
        from openai import OpenAI  # reads OPENAI_API_KEY and OPENAI_BASE_URL itself

        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self._client = OpenAI(max_retries=max_retries, timeout=timeout_s)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def complete(self, request: Mapping) -> dict:
        """Send one canonical request; return the response body as the server sent it.

        Raises LLMCallError when no answer came, MalformedBodyError when the answer is not
        a chat completion. Nothing else escapes: every SDK and socket fault is translated.
        """
        import openai

        try:
            raw = self._client.chat.completions.with_raw_response.create(**chat_arguments(request))
            text = raw.text
        except openai.APIError as err:
            raise LLMCallError(self._cause(err)) from None
        except OSError as err:
            raise LLMCallError(f"connection to {self.base_url} failed: {_one_line(err)}") from None
        return parse_body(text)

    def _cause(self, err: Exception) -> str:
        """What went wrong, in words a user can act on (never the API key)."""
        import openai

        tries = f"after {1 + self.max_retries} attempt(s)"
        if isinstance(err, openai.APITimeoutError):
            return f"timed out after {self.timeout_s:g} s, {tries}"
        if isinstance(err, openai.APIConnectionError):
            reason = _one_line(err.__cause__ or err)
            return f"could not connect to {self.base_url} ({reason}), {tries}"
        if isinstance(err, openai.APIStatusError):
            return self._status_cause(err, tries)
        return f"{type(err).__name__}: {_one_line(err)}"

    def _status_cause(self, err, tries: str) -> str:
        """'HTTP <code> (<hint>): <server message>, after N attempt(s)'."""
        code = err.status_code
        hint = _STATUS_HINTS.get(code, "server error" if code >= 500 else "request refused")
        retried = tries if (code in _RETRIED_STATUS or code >= 500) else "not retried"
        return f"HTTP {code} ({hint}): {_server_message(err)}, {retried}"


def chat_arguments(request: Mapping) -> dict:
    """The SDK keyword arguments of a canonical request (unset options left out, so servers
    without seed or max_tokens support still answer)."""
    kwargs: dict = {
        "model": request["model"],
        "messages": request["messages"],
        "temperature": request["temperature"],
        "n": request["n"],
    }
    if request["seed"] is not None:
        kwargs["seed"] = request["seed"]
    if request["max_tokens"] is not None:
        kwargs["max_tokens"] = request["max_tokens"]
    if request["schema"] is not None:
        kwargs["response_format"] = request["schema"]
    return kwargs


def parse_body(text: str) -> dict:
    """The chat-completion object of a 200 body; MalformedBodyError for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedBodyError(
            f"malformed body: not JSON ({err.msg}: character {err.pos} of {len(text)}): "
            f"{text[:80]!r}"
        ) from None
    if not isinstance(data, dict):
        raise MalformedBodyError(f"malformed body: JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        error = data.get("error")
        detail = f"; error: {_one_line(error)[:160]}" if error else ""
        raise MalformedBodyError(f"malformed body: no 'choices' in the response{detail}")
    return data


def _server_message(err) -> str:
    """The server's own error message, short and on one line."""
    body = err.body
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    return _one_line(message or err.message)[:160]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
