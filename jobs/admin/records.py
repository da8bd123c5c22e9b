"""Admin for the records around jobs: the audit trail, type switches, Celery results, API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from django_celery_results.admin import TaskResultAdmin
from django_celery_results.models import TaskResult

from jobs.admin.bases import ViewOnlyAdmin
from jobs.api.tokens import api_token_create, api_token_revoke, default_token_lifetime
from jobs.core import registry
from jobs.foundation.exceptions import UnknownJobType
from jobs.models import ApiToken, JobAuditEntry, JobTypeSwitch
from jobs.ops.operations import job_type_set_enabled

if TYPE_CHECKING:
    # django-stubs makes ModelForm and ModelAdmin generic by model; Django's classes take no subscript at run time.
    _JobTypeSwitchModelForm = forms.ModelForm[JobTypeSwitch]
    _JobTypeSwitchModelAdmin = admin.ModelAdmin[JobTypeSwitch]
    _ApiTokenModelForm = forms.ModelForm[ApiToken]
    _ApiTokenModelAdmin = admin.ModelAdmin[ApiToken]
else:
    _JobTypeSwitchModelForm = _ApiTokenModelForm = forms.ModelForm
    _JobTypeSwitchModelAdmin = _ApiTokenModelAdmin = admin.ModelAdmin


@admin.register(JobAuditEntry)
class JobAuditEntryAdmin(ViewOnlyAdmin):
    # occurrences: how many events a counted row stands for (throttled logins: one row per address and window).
    list_display = ("created_at", "actor_label", "action", "subject", "occurrences", "job_count", "short_job_ids")
    list_filter = ("action", "created_at")
    search_fields = ("actor_label", "action")
    readonly_fields = ("created_at", "actor", "actor_label", "action", "occurrences", "last_seen_at", "job_ids",
                       "job_count", "detail")  # fmt: skip

    @admin.display(description="type, reason or address")
    def subject(self, entry: JobAuditEntry) -> str:
        detail = entry.detail or {}
        parts = [str(detail[key]) for key in ("type", "reason", "address") if detail.get(key)]
        return " — ".join(parts) or "-"

    @admin.display(description="jobs")
    def short_job_ids(self, entry: JobAuditEntry) -> str:
        ids = entry.job_ids[:5]
        return ", ".join(ids) + (" …" if len(entry.job_ids) > 5 else "")


class JobTypeSwitchForm(_JobTypeSwitchModelForm):
    """Only declared job types can be switched: a typo would otherwise switch off nothing, silently."""

    type = forms.ChoiceField(choices=())

    class Meta:
        model = JobTypeSwitch
        fields = ("type", "enabled", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "type" in self.fields:  # read-only once the switch exists
            declared = [(spec.name, spec.name) for spec in registry.all_types()]
            self.fields["type"].choices = declared  # type: ignore[attr-defined]


@admin.register(JobTypeSwitch)
class JobTypeSwitchAdmin(_JobTypeSwitchModelAdmin):
    """Switches change through ``job_type_set_enabled``: checked, audited, and waiting jobs relayed when on."""

    form = JobTypeSwitchForm
    list_display = ("type", "enabled", "reason", "updated_at")
    list_editable = ("enabled", "reason")

    def get_readonly_fields(self, request: HttpRequest, obj: JobTypeSwitch | None = None) -> tuple[str, ...]:
        return ("type",) if obj else ()

    def save_model(
        self, request: HttpRequest, obj: JobTypeSwitch, form: forms.ModelForm[JobTypeSwitch], change: bool
    ) -> None:
        switch = job_type_set_enabled(job_type=obj.type, enabled=obj.enabled, reason=obj.reason, actor=request.user)
        obj.pk = switch.pk

    def get_urls(self) -> list[URLPattern]:
        toggle = path("toggle/", self.admin_site.admin_view(require_POST(self.toggle_view)),
                      name="jobs_jobtypeswitch_toggle")  # fmt: skip
        return [toggle, *super().get_urls()]

    def may_switch(self, request: HttpRequest, switch: JobTypeSwitch | None) -> bool:
        """The admin's own rule: changing a switch takes the change permission, a first switch the add one."""
        return self.has_change_permission(request, switch) if switch else self.has_add_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Every declared type with its queue, its state and a toggle, not only the types switched once."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        switches = {switch.type: switch for switch in JobTypeSwitch.objects.all()}
        off_by_settings = set(getattr(settings, "JOBS_DISABLED_TYPES", ()))
        rows = []
        for spec in registry.all_types():
            switch = switches.pop(spec.name, None)
            rows.append({
                "type": spec.name, "queue": spec.queue, "description": spec.description, "switch": switch,
                "enabled": spec.name not in off_by_settings and (switch is None or switch.enabled),
                "by_settings": spec.name in off_by_settings,
                "may_switch": spec.name not in off_by_settings and self.may_switch(request, switch),
                "change_url": reverse("admin:jobs_jobtypeswitch_change", args=[switch.pk]) if switch else "",
            })  # fmt: skip
        context = {
            **self.admin_site.each_context(request), "title": "Job type switches", "opts": self.opts, "rows": rows,
            "undeclared": sorted(switches.values(), key=lambda switch: switch.type),
            "toggle_url": reverse("admin:jobs_jobtypeswitch_toggle"), **(extra_context or {}),
        }  # fmt: skip
        return TemplateResponse(request, "admin/jobs/jobtypeswitch/change_list.html", context)

    def toggle_view(self, request: HttpRequest) -> HttpResponse:
        """Switch one type on or off from the list, through the same service (and audit entry) as the form."""
        job_type = request.POST.get("type", "")
        enabled = request.POST.get("enabled") == "1"
        reason = request.POST.get("reason", "").strip()[:255]
        if not self.may_switch(request, JobTypeSwitch.objects.filter(type=job_type).first()):
            raise PermissionDenied
        try:
            job_type_set_enabled(job_type=job_type, enabled=enabled, reason=reason, actor=request.user)
        except UnknownJobType:
            messages.error(request, f"{job_type} is not a declared job type; nothing was switched.")
        else:
            messages.success(request, f"Switched {job_type} {'on' if enabled else 'off'}.")
        return HttpResponseRedirect(reverse("admin:jobs_jobtypeswitch_changelist"))


class LinkedTaskResultAdmin(ViewOnlyAdmin, TaskResultAdmin):  # type: ignore[misc]  # django-celery-results has no types
    """Celery's result rows, with a link back to the job whose attempt produced them.

    Records of what ran, not forms: nobody adds, edits or deletes them by hand (beat's
    celery.backend_cleanup removes them after CELERY_RESULT_EXPIRES).
    """

    list_display = (*TaskResultAdmin.list_display, "job_link")

    @admin.display(description="job")
    def job_link(self, result: TaskResult) -> str:
        job_id, _, attempt = (result.task_id or "").rpartition(".")
        if not job_id or not attempt.isdigit():
            return "-"
        return format_html(
            '<a href="{}">{} (attempt {})</a>', reverse("admin:jobs_job_change", args=[job_id]), job_id, attempt
        )


admin.site.unregister(TaskResult)
admin.site.register(TaskResult, LinkedTaskResultAdmin)


class ApiTokenForm(_ApiTokenModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple, initial=["read", "enqueue"]
    )

    class Meta:
        model = ApiToken
        fields = ("user", "name", "scopes", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(_ApiTokenModelAdmin):
    """Tokens are created here (the plaintext is shown once) and revoked, never edited."""

    form = ApiTokenForm
    list_display = ("name", "user", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "scopes", "expires_at")
    actions = ["revoke_tokens"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return ("user", "name", "scopes", "expires_at", "last_used_at", "revoked_at") if obj else ()

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return (*self.fields, "last_used_at", "revoked_at") if obj else tuple(self.fields)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        lifetime = default_token_lifetime()
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        initial["expires_at"] = timezone.now() + lifetime if lifetime else None
        return initial

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm[ApiToken], change: bool) -> None:
        if change:
            return
        expires_at = form.cleaned_data.get("expires_at")
        token, plaintext = api_token_create(
            user=obj.user,
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            lifetime=(expires_at - timezone.now()) if expires_at else None,
        )
        obj.pk = token.pk
        messages.warning(request, f"Token for {obj.user}: {plaintext} — copy it now, it is not shown again.")

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(permissions=["delete"], description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token)
        messages.success(request, "Revoked.")
