"""Operator admin for the outbox: each email with its rendered preview, state and SMTP transcript;
resend / dismiss actions (confirmed, audited); the suppression list with removal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs.public import ViewOnlyAdmin

from . import services
from .models import EmailMessage, Suppression

State = EmailMessage.State
STATE_COLOURS: dict[str, str] = {
    State.PENDING: "#52606d", State.SENDING: "#2563eb", State.SENT: "#15803d", State.FAILED: "#b91c1c",
    State.SUPPRESSED: "#92400e", State.LIMITED: "#92400e", State.UNCERTAIN: "#c2410c", State.DISMISSED: "#52606d",
}  # fmt: skip


def _confirmed(
    *, request: HttpRequest, queryset: QuerySet[EmailMessage], eligible_states: tuple[str, ...], action: str, verb: str,
    done: str, explanation: str, perform: Callable[[EmailMessage], bool],
) -> HttpResponse | None:  # fmt: skip
    """Filter the selection to emails in a valid state, ask for confirmation, act on each, report counts."""
    chosen = queryset.count()
    targets = list(queryset.filter(state__in=eligible_states))
    skipped = chosen - len(targets)
    if not targets:
        messages.warning(request, f"None of the {chosen} selected email(s) can be {done}: {explanation}")
        return None
    if request.POST.get("confirm") != "yes":
        return TemplateResponse(request, "admin/emails/confirm_action.html", {
            **admin.site.each_context(request),
            "title": f"{verb.capitalize()} {len(targets)} email(s)?", "verb": verb, "action": action,
            "emails": targets[:100], "more": max(0, len(targets) - 100), "skipped": skipped,
            "explanation": explanation, "opts": queryset.model._meta,
            "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        })  # fmt: skip
    count = sum(1 for email in targets if perform(email))
    note = f" ({skipped} selected email(s) were not in a valid state and were left alone)" if skipped else ""
    messages.success(request, f"{count} email(s) {done}.{note}")
    return None


@admin.register(EmailMessage)
class EmailMessageAdmin(ViewOnlyAdmin):
    list_display = ("key", "colored_state", "recipients", "subject", "attempts", "created_at")
    list_filter = ("state", "template", "delivery", "created_at")
    search_fields = ("=key", "to", "=message_id", "subject")
    search_help_text = "A whole key or Message-ID, part of a recipient address, or part of the subject."
    actions = ["resend_emails", "dismiss_emails"]
    readonly_fields = ("key", "template", "delivery", "colored_state", "recipients", "from_email", "subject",
                       "message_id", "job_link", "claimed_by", "attempts", "resends", "smtp_code", "smtp_reply",
                       "last_error", "suppressed_recipients", "limited_recipients", "html_preview", "text_preview", "context",
                       "transcript_display", "created_at", "claimed_at", "sent_at", "finished_at", "updated_at")  # fmt: skip
    fieldsets = (
        (None, {"fields": ("key", "template", "colored_state", "recipients", "from_email", "subject")}),
        ("Preview (what was rendered at enqueue time, and is what gets sent)",
         {"fields": ("html_preview", "text_preview", "context")}),
        ("Delivery", {"fields": ("delivery", "attempts", "resends", "smtp_code", "smtp_reply", "last_error",
                                 "suppressed_recipients", "limited_recipients", "message_id", "job_link",
                                 "claimed_by")}),
        ("SMTP transcript", {"fields": ("transcript_display",)}),
        ("Timeline", {"fields": ("created_at", "claimed_at", "sent_at", "finished_at", "updated_at")}),
    )  # fmt: skip

    @admin.display(description="to")
    def recipients(self, email: EmailMessage) -> str:
        return ", ".join(email.to)

    @admin.display(description="state", ordering="state")
    def colored_state(self, email: EmailMessage) -> str:
        return format_html('<strong style="color:{}">{}</strong>', STATE_COLOURS.get(email.state, "inherit"),
                           email.get_state_display())  # fmt: skip

    @admin.display(description="HTML")
    def html_preview(self, email: EmailMessage) -> str:
        if not email.html_body:
            return "(no HTML part)"
        # srcdoc in a sandbox without scripts or same-origin: the mail's markup cannot reach the admin.
        return format_html(
            '<iframe title="HTML preview" sandbox="" referrerpolicy="no-referrer" srcdoc="{}" '
            'style="width:720px;max-width:100%;height:560px;border:1px solid #d9e2ec;background:#fff;"></iframe>',
            email.html_body,
        )

    @admin.display(description="text")
    def text_preview(self, email: EmailMessage) -> str:
        return format_html('<pre style="white-space:pre-wrap;max-width:720px;margin:0;">{}</pre>', email.text_body)

    @admin.display(description="transcript")
    def transcript_display(self, email: EmailMessage) -> str:
        return format_html('<pre style="white-space:pre-wrap;word-break:break-all;max-width:960px;margin:0;">{}</pre>',
                           email.transcript or "(no SMTP conversation yet)")  # fmt: skip

    @admin.display(description="job")
    def job_link(self, email: EmailMessage) -> str:
        if not email.job_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[email.job_id]), email.job_id)

    @admin.action(description="Resend selected emails (failed, may have been sent, suppressed, limited, dismissed)",
                  permissions=["resend"])  # fmt: skip
    def resend_emails(self, request: HttpRequest, queryset: QuerySet[EmailMessage]) -> HttpResponse | None:
        return _confirmed(
            request=request, queryset=queryset, eligible_states=services.RESENDABLE_STATES, action="resend_emails",
            verb="resend", done="resent",
            explanation="Each is queued again with the same content and Message-ID. An email that may have been "
                        "sent can reach its recipient twice: resend only when you believe it was not delivered. "
                        "Sent emails are never resent; suppressed recipients stay left out; recipients over the "
                        "per-recipient limit are sent to.",
            perform=lambda email: services.email_resend(email=email, actor=request.user),
        )  # fmt: skip

    @admin.action(description="Dismiss selected emails that may have been sent (do not resend)",
                  permissions=["dismiss"])  # fmt: skip
    def dismiss_emails(self, request: HttpRequest, queryset: QuerySet[EmailMessage]) -> HttpResponse | None:
        return _confirmed(
            request=request, queryset=queryset, eligible_states=(State.UNCERTAIN,), action="dismiss_emails",
            verb="dismiss", done="dismissed",
            explanation="Each stays unsent by us from now on (for example the recipient confirmed they got it).",
            perform=lambda email: services.email_dismiss(email=email, actor=request.user),
        )  # fmt: skip

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("emails.resend_emailmessage")

    def has_dismiss_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("emails.dismiss_emailmessage")


@admin.register(Suppression)
class SuppressionAdmin(ViewOnlyAdmin):
    list_display = ("address", "smtp_code", "reason", "email_key", "created_at")
    search_fields = ("address",)
    actions = ["remove_suppressions"]

    @admin.action(description="Remove selected addresses from the suppression list (mail them again)",
                  permissions=["delete"])  # fmt: skip
    def remove_suppressions(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> HttpResponse | None:
        chosen = list(queryset)
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(request, "admin/emails/confirm_action.html", {
                **admin.site.each_context(request),
                "title": f"Remove {len(chosen)} address(es) from the suppression list?", "verb": "remove",
                "action": "remove_suppressions", "emails": [], "more": 0, "skipped": 0, "opts": queryset.model._meta,
                "explanation": "Later emails to these addresses will be sent again. Emails already suppressed "
                               "stay so until resent. " + ", ".join(s.address for s in chosen[:100]),
                "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
            })  # fmt: skip
        removed = services.suppression_remove(suppressions=chosen, actor=request.user)
        messages.success(request, f"{removed} address(es) removed from the suppression list.")
        return None

    def has_delete_permission(self, request: HttpRequest, obj: Suppression | None = None) -> bool:
        return request.user.has_perm("emails.delete_suppression")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # removal goes through the service (audited)
        return actions
