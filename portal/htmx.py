"""Rendering a page, or only the part of it an htmx request asks for."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def is_partial(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted  # boosted requests want the whole page


def render_page(request: HttpRequest, template: str, partial: str, context: dict) -> HttpResponse:
    name = f"{template}#{partial}" if is_partial(request) else template
    return render(request, name, context)
