"""Rendering a page, or only the part of it an htmx request asks for."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def is_partial(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    # Boosted requests and history restores (Back after a cache miss) want the whole page.
    return htmx is not None and bool(htmx) and not (htmx.boosted or htmx.history_restore_request)


def render_page(request: HttpRequest, template: str, partial: str, context: dict) -> HttpResponse:
    name = f"{template}#{partial}" if is_partial(request) else template
    response = render(request, name, context)
    # The page and its fragment share a URL: caches (the browser's Back) must tell them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response
