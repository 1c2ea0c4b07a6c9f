"""The console's one way to the management APIs: JSON over HTTP with the user's key.

A refusal of the API keeps the API's own code and message (``central.forbidden``, ...)
so the page shows the operator exactly what the API said; a transport failure is
``console.api_unreachable``.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.console.errors import ConsoleCode, ConsoleError

TIMEOUT_SECONDS = 30.0


class ApiRefusal(Exception):
    """The API answered with an error: its HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ApiClient:
    """One API (the central's ``/admin/v1``) at ``base_url``."""

    def __init__(self, base_url: str, prefix: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def download(self, path: str, key: str) -> bytes:
        """The raw answer of a GET made with ``key`` (a file, not JSON); refusals as
        :meth:`call` raises them."""
        try:
            response = await self._client.get(
                self.prefix + path, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as exc:
            raise ConsoleError(
                ConsoleCode.API_UNREACHABLE, f"{self.base_url}: {type(exc).__name__}"
            ) from None
        if response.is_success:
            return response.content
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            raise ApiRefusal(response.status_code, data["type"], str(data.get("message", "")))
        raise ApiRefusal(response.status_code, f"http.{response.status_code}", response.text)

    async def call(self, method: str, path: str, key: str, body: Any = None) -> Any:
        """The JSON answer of one call made with ``key``; raises :class:`ApiRefusal` for an
        error answer, ``console.api_unreachable`` when there is no usable answer."""
        try:
            response = await self._client.request(
                method,
                self.prefix + path,
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
        except httpx.HTTPError as exc:
            raise ConsoleError(
                ConsoleCode.API_UNREACHABLE, f"{self.base_url}: {type(exc).__name__}"
            ) from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            raise ConsoleError(
                ConsoleCode.API_UNREACHABLE,
                f"{self.base_url} answered {response.status_code} without JSON",
            ) from None
        if response.is_success:
            return data
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            raise ApiRefusal(response.status_code, data["type"], str(data.get("message", "")))
        raise ApiRefusal(response.status_code, f"http.{response.status_code}", str(data))
