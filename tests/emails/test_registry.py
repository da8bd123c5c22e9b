"""Rendering: subject, text and HTML from the template files; escaping; unknown templates and missing context."""

import pytest

from emails.exceptions import EmailContextInvalid, EmailTemplateUnknown
from emails.registry import email_render, email_template_declare, email_template_names


def test_export_ready_renders_subject_text_and_html_with_the_exports_page_link():
    rendered = email_render(template="export_ready", context={
        "export_id": "42", "exports_url": "https://shop.example/exports/", "recipient_name": "Ada"})  # fmt: skip

    assert rendered.subject == "Your export is ready"  # without what, format and rows (older jobs)
    assert "Hello Ada," in rendered.text_body and "https://shop.example/exports/" in rendered.text_body
    assert '<a href="https://shop.example/exports/"' in rendered.html_body
    assert rendered.html_body.startswith("<!DOCTYPE html>")
    # Inline styles only: no stylesheet, script or remote asset a mail client would block.
    for remote in ("<link", "<script", "src=", "url("):
        assert remote not in rendered.html_body


def test_user_content_is_escaped_in_html_but_not_in_text():
    name = '<script>alert("x")</script> & "Bob"'
    rendered = email_render(template="export_ready",
                            context={"export_id": "1", "exports_url": "https://s/e/", "recipient_name": name})  # fmt: skip

    assert "<script>" not in rendered.html_body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Bob&quot;" in rendered.html_body
    assert f"Hello {name}," in rendered.text_body  # plain text is not HTML: no entities there


def test_a_subject_is_one_line_whatever_the_context_holds():
    rendered = email_render(template="test_receipt", context={"name": "A", "order": "7\r\nBcc: evil@example.com"})

    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject == "Receipt for order 7 Bcc: evil@example.com"


def test_unknown_template_is_refused_naming_the_known_ones():
    with pytest.raises(EmailTemplateUnknown) as error:
        email_render(template="welcome_mail", context={})

    assert "unknown email template 'welcome_mail'" in error.value.message
    assert "export_ready" in error.value.message and error.value.detail["known"] == email_template_names()


def test_missing_context_keys_are_refused_by_name():
    with pytest.raises(EmailContextInvalid) as error:
        email_render(template="export_ready", context={"export_id": "1"})

    assert error.value.detail["missing"] == ["exports_url", "recipient_name"]
    assert "needs context key(s) exports_url, recipient_name" in error.value.message


def test_context_must_be_json():
    with pytest.raises(EmailContextInvalid, match="must be JSON"):
        email_render(template="test_receipt", context={"name": object(), "order": 1})


def test_a_declared_template_without_files_says_which_file_is_missing():
    email_template_declare("test_no_files", required_context=())

    with pytest.raises(EmailTemplateUnknown, match="emails/test_no_files/subject.txt"):
        email_render(template="test_no_files", context={})


def test_declaring_a_template_twice_differently_is_an_error():
    with pytest.raises(ValueError, match="declared twice"):
        email_template_declare("export_ready", required_context=("only_this",))
