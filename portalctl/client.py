"""HTTP to the portal, with the standard library (a pipeline installs nothing more).

Every error the portal answers has one shape (``{"error": {"code", "message", "fields",
"request_id", ...}}``); ``Refused`` carries it, so the command can print the message and the
request id an operator greps the portal's logs for.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

USER_AGENT = "portalctl/0.1"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Refused(Exception):
    """The portal answered with an error (4xx/5xx)."""

    status: int
    code: str
    message: str
    request_id: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    error: dict = field(default_factory=dict)  # the whole error object, extra keys included

    def __str__(self) -> str:
        return self.message


class Unreachable(Exception):
    """No answer: the portal is down, the address is wrong, or it took too long."""

    code = "unreachable"


class NotThePortal(Exception):
    """An answer, but not from the portal's API: the address leads elsewhere (a web site, a
    sign-in page, the portal's address without its path)."""

    code = "not_the_portal"


def media_type(headers: dict[str, str]) -> str:
    """The answer's media type, lower-cased, without parameters ("" when none is given)."""
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: urllib would turn a POST into a GET without its
    body and send the token on to wherever it leads."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class Portal:
    def __init__(self, url: str, token: str = "", timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def send(
        self, method: str, path: str, *, body=None, params=None, accept="", text=False
    ) -> Response:
        """One request; any HTTP status the portal gives is an answer (a 503 from
        /health/service is one). Every answer of the portal's API is JSON (``text``: or, when
        it succeeds, text/plain); anything else did not come from it (``answered_by_portal``)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"User-Agent": USER_AGENT, "Accept": accept or "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (the URL is the user's portal)
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                response = Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as exc:
            response = Response(exc.code, dict(exc.headers), exc.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach the portal at {self.url}: {reason}") from None
        self.answered_by_portal(response, text=text)
        return response

    def answered_by_portal(self, response: Response, *, text: bool = False) -> None:
        """NotThePortal for an answer the portal's API would not give -- an HTML page, say:
        the address is wrong. A gateway's page in front of it (5xx) is Unreachable instead:
        the portal behind it may be restarting, which a wait waits out."""
        kind = media_type(response.headers)
        redirect = 300 <= response.status < 400
        if not redirect and text and kind == "text/plain" and response.status < 400:
            return
        if not redirect and is_json(kind) and _portals_json(response):
            return
        what = kind or "no content type"
        if is_json(kind):  # labelled JSON, but not the portal's (breaking trial, issue 28)
            what += ", not the portal's JSON"
        message = f"this is not the portal's API at {self.url} (HTTP {response.status}, {what})"
        if response.status >= 500:
            raise Unreachable(
                f"{message}: something in front of the portal answered; it may be down or "
                "restarting"
            )
        location = next((v for k, v in response.headers.items() if k.lower() == "location"), "")
        hint = f"it redirects to {location}" if location else "check --url or PORTAL_URL"
        raise NotThePortal(f"{message}; {hint}")

    def call(
        self, method: str, path: str, *, body=None, params=None, accept="", text=False
    ) -> Response:
        """A request whose error answers raise ``Refused``."""
        response = self.send(method, path, body=body, params=params, accept=accept, text=text)
        if response.status >= 400:
            raise refused(response)
        return response

    def get(self, path: str, **params):
        return self.call("GET", path, params=params).json()

    def check_token(self) -> None:
        """For the commands that read only open endpoints (status, wait): a token that was
        given must still be a valid one, or the pipeline learns it only at its next write.
        A token without the scope to list teams is valid (403); only a 401 refuses."""
        if not self.token:
            return
        response = self.send("GET", "/api/teams")
        if response.status == 401:
            raise refused(response)

    def post(self, path: str, body, **params):
        return self.call("POST", path, body=body, params=params).json()


def _portals_json(response: Response) -> bool:
    """Whether a JSON-labelled answer could be the portal's: it parses (a gateway's page
    labelled JSON did not, and portalctl ended in a JSONDecodeError traceback), and a
    refusal below 500 carries the portal's error object (another JSON API's 404 read as
    'no service named')."""
    try:
        document = response.json()
    except ValueError:
        return False
    if 400 <= response.status < 500:
        return isinstance(document, dict) and isinstance(document.get("error"), dict)
    return True


def refused(response: Response) -> Refused:
    """The portal's error, or a plain description of an answer in another shape (a proxy's
    HTML page, say)."""
    request_id = response.headers.get("X-Request-ID", "")
    try:
        error = response.json()["error"]
        return Refused(
            status=response.status,
            code=str(error.get("code", "")),
            message=str(error.get("message", "")),
            request_id=str(error.get("request_id") or request_id),
            fields=dict(error.get("fields") or {}),
            error=error,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        first = response.text.strip().splitlines()[:1]
        message = f"HTTP {response.status}" + (f": {first[0][:200]}" if first else "")
        return Refused(response.status, "http_error", message, request_id)
