"""How exports is wired: jobs.public only, no domain app importing another, storage chosen by environment."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(app: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / app).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name) for alias in node.names)
    return found


def test_exports_imports_only_jobs_public_and_no_other_domain_app():
    wrong = sorted((path, module) for path, module in _imports("exports")
                   if (module.startswith("jobs") and module != "jobs.public")
                   or module.split(".")[0] in {"sync", "emails", "config"})  # fmt: skip
    assert wrong == []


def test_no_domain_app_imports_exports():
    wrong = sorted((path, module) for app in ("sync", "emails", "jobs") for path, module in _imports(app)
                   if module.split(".")[0] == "exports")  # fmt: skip
    assert wrong == []


def test_s3_storage_is_chosen_by_environment_variables():
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "EXPORTS_STORAGE": "s3",
           "AWS_STORAGE_BUCKET_NAME": "files", "AWS_S3_ENDPOINT_URL": "http://minio:9000"}  # fmt: skip
    code = "import json; from django.conf import settings; print(json.dumps(settings.EXPORTS_STORAGE))"
    chosen = json.loads(subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout)  # fmt: skip
    assert chosen["BACKEND"] == "storages.backends.s3.S3Storage"
    assert (chosen["OPTIONS"]["bucket_name"], chosen["OPTIONS"]["endpoint_url"]) == ("files", "http://minio:9000")
