"""Email templates: what each is called, which context it needs, and how it renders.

A template is three files under a template directory's ``emails/<name>/``: ``subject.txt``,
``body.txt`` and ``body.html`` (optional). They are Django templates; the HTML part is
autoescaped (user content cannot inject markup), the subject and text parts are not (they
are not HTML). Declare a template once, with the context keys it needs::

    email_template_declare("order_confirmation", required_context=("order_number", "total"))

Rendering refuses an undeclared template and a context missing a required key, with an
error naming what is missing, so a typo fails at enqueue time instead of mailing a blank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template import Context, Engine, TemplateDoesNotExist

from .exceptions import EmailContextInvalid, EmailTemplateUnknown
from .models import EmailMessage

Delivery = EmailMessage.Delivery


@dataclass(frozen=True)
class EmailTemplate:
    name: str
    required_context: tuple[str, ...] = ()
    # At most once by default: an uncertain send waits for an operator instead of risking a duplicate.
    delivery: str = Delivery.AT_MOST_ONCE
    description: str = ""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text_body: str
    html_body: str


@dataclass
class _Registry:
    templates: dict[str, EmailTemplate] = field(default_factory=dict)
    # Extra directories searched before the project's (tests declare templates of their own).
    extra_dirs: list[str] = field(default_factory=list)


_registry = _Registry()


def email_template_declare(
    name: str,
    *,
    required_context: tuple[str, ...] = (),
    delivery: str = Delivery.AT_MOST_ONCE,
    description: str = "",
    directory: str | Path | None = None,
) -> EmailTemplate:
    """Declare a template; ``directory`` adds a template directory holding ``emails/<name>/``."""
    if delivery not in Delivery.values:
        raise ValueError(f"email template {name!r}: delivery must be one of {Delivery.values}, got {delivery!r}")
    template = EmailTemplate(
        name=name, required_context=tuple(required_context), delivery=delivery, description=description
    )
    existing = _registry.templates.get(name)
    if existing is not None and existing != template:
        raise ValueError(f"email template {name!r} is declared twice with different definitions")
    if directory is not None and str(directory) not in _registry.extra_dirs:
        _registry.extra_dirs.append(str(directory))
        _engine.cache_clear()
    _registry.templates[name] = template
    return template


def email_template_get(name: str) -> EmailTemplate:
    try:
        return _registry.templates[name]
    except KeyError:
        known = ", ".join(sorted(_registry.templates)) or "none"
        raise EmailTemplateUnknown(
            f"unknown email template {name!r}; declared templates: {known}",
            detail={"template": name, "known": sorted(_registry.templates)},
        ) from None


def email_template_names() -> list[str]:
    return sorted(_registry.templates)


@cache
def _engine() -> Engine:
    project_dirs = [str(path) for options in settings.TEMPLATES for path in options.get("DIRS", [])]
    return Engine(dirs=[*_registry.extra_dirs, *project_dirs], app_dirs=True)


def email_render(*, template: str, context: dict[str, Any]) -> RenderedEmail:
    """Render a declared template's subject, text and HTML with ``context`` (a JSON-compatible dict)."""
    spec = email_template_get(template)
    missing = [key for key in spec.required_context if key not in context]
    if missing:
        raise EmailContextInvalid(
            f"email template {template!r} needs context key(s) {', '.join(missing)}; got {sorted(context) or 'none'}",
            detail={"template": template, "missing": missing},
        )
    try:
        json.dumps(context)
    except (TypeError, ValueError) as error:
        raise EmailContextInvalid(
            f"the context of email template {template!r} must be JSON (it is stored with the email): {error}",
            detail={"template": template},
        ) from None
    engine, folder = _engine(), f"emails/{template}"
    try:
        subject: str = engine.get_template(f"{folder}/subject.txt").render(Context(context, autoescape=False))
        text_body = engine.get_template(f"{folder}/body.txt").render(Context(context, autoescape=False))
    except TemplateDoesNotExist as error:
        raise EmailTemplateUnknown(
            f"email template {template!r} is declared but its file {error} is missing "
            f"(expected {folder}/subject.txt and {folder}/body.txt in a template directory)",
            detail={"template": template},
        ) from None
    try:
        html_body: str = engine.get_template(f"{folder}/body.html").render(Context(context, autoescape=True))
    except TemplateDoesNotExist:
        html_body = ""
    # One line: a header cannot hold a line break (and a user-given value must not add headers).
    subject = " ".join(subject.split())
    return RenderedEmail(subject=subject, text_body=text_body.strip() + "\n", html_body=html_body.strip())


# ---------------------------------------------------------------------------
# Built-in templates
# ---------------------------------------------------------------------------

email_template_declare(
    "export_ready",
    required_context=("export_id", "exports_url", "recipient_name"),
    description="Tells a user their export is ready, linking to the exports page (never the signed file link).",
)
email_template_declare(
    "dead_letter_digest",
    required_context=("dead_count", "by_type", "admin_url", "window_seconds"),
    description="Operators' digest of the dead-letter queue, sent at most once per window while it is not empty.",
)
