"""Email templates used only by tests. Workers started by these tests load this module (--include)."""

from __future__ import annotations

from pathlib import Path

from emails.registry import email_template_declare

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

email_template_declare("test_receipt", required_context=("name", "order"), directory=TEMPLATE_DIR)
email_template_declare(
    "test_receipt_alo", required_context=("name", "order"), delivery="at_least_once", directory=TEMPLATE_DIR
)
