"""Exports on S3-compatible storage: a real moto server in a subprocess (never a mock of boto)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from devtools.devstack import free_port
from exports.models import Export
from exports.services import ExportRequest, export_build, export_create, exports_cleanup, exports_storage
from tests.exports.conftest import make_products
from tests.peers import require_module
from tests.processes import wait_for

pytestmark = pytest.mark.django_db
BUCKET = "exports-test"


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    require_module("moto", pypi_package="moto[server]")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    try:
        wait_for(answers, timeout=30, message="moto_server to answer")
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_storage(settings, s3_server):
    settings.EXPORTS_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": BUCKET, "endpoint_url": s3_server, "region_name": "us-east-1", "default_acl": None,
        "file_overwrite": False, "addressing_style": "path", "signature_version": "s3v4",
    }}  # fmt: skip
    return s3_server


def test_s3_upload_presigned_redirect_expiry_and_deletion(s3_storage, alice, redis_client, settings):
    make_products(25)
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    export_build(export_id=export.pk, job_id=export.job_id, progress=lambda *a, **k: None)
    export.refresh_from_db()
    assert export.status == Export.Status.SUCCEEDED
    storage = exports_storage()
    assert storage.exists(export.storage_key)
    with storage.open(export.storage_key) as handle:
        assert handle.read().count(b"\r\n") == 26

    client = Client()
    client.force_login(alice)
    link = client.get(f"/api/exports/{export.pk}").json()["download_url"]
    response = client.get(link)
    assert response.status_code == 302
    presigned = response["Location"]
    assert presigned.startswith(f"{s3_storage}/{BUCKET}/exports/{export.pk}/")
    query = parse_qs(urlsplit(presigned).query)
    # Short-lived: the URL carries its own lifetime, signed (SigV4), so nobody can stretch it.
    assert query["X-Amz-Expires"] == [str(settings.EXPORTS_PRESIGNED_URL_SECONDS)] and query["X-Amz-Signature"]
    with urllib.request.urlopen(presigned, timeout=5) as fetched:
        assert fetched.read().startswith(b"supplier_id,sku,name")
        assert export.file_name in fetched.headers["Content-Disposition"]

    # Our own link expires too: then no redirect at all.
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = 0
    wait_for(lambda: client.get(link).status_code == 410, timeout=5, message="the link to expire")
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = 900

    Export.objects.filter(pk=export.pk).update(expires_at=export.finished_at)
    assert exports_cleanup() == 1
    assert not storage.exists(export.storage_key)
    assert client.get(link).status_code == 410
