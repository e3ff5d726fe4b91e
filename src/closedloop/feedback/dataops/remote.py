"""Remote sources: an S3 object (boto3) and a public Google Sheet (its CSV export).

Google Sheet links are rewritten to their CSV export (``…/edit#gid=N`` →
``…/export?format=csv&gid=N``). Only hosts in ``DATAOPS_REMOTE_HOSTS`` (default: Google
Sheets' ``docs.google.com``) are fetched over HTTP, so the server cannot be made to read
internal addresses. Downloads stop at ``DATAOPS_MAX_UPLOAD_SIZE``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from closedloop.feedback.dataops.errors import data_error
from closedloop.feedback.dataops.sources import check_size, max_upload_size

HTTP_TIMEOUT = 30
CHUNK = 1 << 16
_SHEET = re.compile(r"^/spreadsheets/d/([A-Za-z0-9_-]+)")


def remote_hosts() -> list[str]:
    return list(getattr(settings, "DATAOPS_REMOTE_HOSTS", None) or ["docs.google.com"])


def sheet_export_url(url: str) -> str:
    """A Google Sheet link as its CSV export link (other links unchanged)."""
    parts = urlsplit(url.strip())
    match = _SHEET.match(parts.path)
    if not match:
        return url.strip()
    gid = (parse_qs(parts.fragment).get("gid") or parse_qs(parts.query).get("gid") or ["0"])[0]
    base = f"{parts.scheme}://{parts.netloc}/spreadsheets/d/{match.group(1)}"
    return f"{base}/export?format=csv&gid={gid}"


def kind_of(name: str) -> str | None:
    lowered = name.lower().split("?", 1)[0]
    for suffix, kind in ((".csv", "csv"), (".txt", "csv"), (".xlsx", "xlsx"), (".json", "json")):
        if lowered.endswith(suffix):
            return kind
    return None


def fetch_http(url: str) -> bytes:
    import requests

    url = sheet_export_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise data_error(_("Enter a full http(s) link."), column="url")
    if parts.hostname.lower() not in remote_hosts():
        raise data_error(
            _("Data can be read only from %(hosts)s.") % {"hosts": ", ".join(remote_hosts())},
            column="url",
        )
    limit = max_upload_size()
    try:
        with requests.get(url, stream=True, timeout=HTTP_TIMEOUT, allow_redirects=True) as reply:
            if reply.status_code != 200:
                raise data_error(
                    _("The link answered with HTTP %(code)d; is the sheet shared publicly?")
                    % {"code": reply.status_code},
                    column="url",
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in reply.iter_content(CHUNK):
                size += len(chunk)
                if size > limit:
                    check_size(size)
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise data_error(
            _("The link could not be read: %(err)s") % {"err": exc}, column="url"
        ) from None
    return b"".join(chunks)


def fetch_s3(
    bucket: str,
    key: str,
    *,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> bytes:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    options: dict[str, Any] = {"region_name": region or None}
    if access_key:
        options.update(aws_access_key_id=access_key, aws_secret_access_key=secret_key or "")
    try:
        client = boto3.client("s3", **options)
        head = client.head_object(Bucket=bucket, Key=key)
        check_size(int(head.get("ContentLength", 0)))
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        data: bytes = body.read(max_upload_size() + 1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise data_error(
                _("There is no object “%(key)s” in bucket “%(bucket)s”.")
                % {"key": key, "bucket": bucket},
                column="key",
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise data_error(_("S3 refused access: check the access key and secret."), column="access_key") from None  # fmt: skip
        raise data_error(_("S3 answered: %(err)s") % {"err": exc}) from None
    except BotoCoreError as exc:
        raise data_error(_("S3 could not be reached: %(err)s") % {"err": exc}) from None
    check_size(len(data))
    return data


def parse_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise data_error(_("Enter an S3 address as s3://bucket/key."), column="url")
    return parts.netloc, parts.path.lstrip("/")


def fetch_remote(
    url: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
) -> tuple[bytes, str | None]:
    """The bytes at ``url`` (``s3://bucket/key`` or an http(s) link) and the kind its
    name suggests (None if it does not say)."""
    if url.strip().lower().startswith("s3://"):
        bucket, key = parse_s3_url(url)
        data = fetch_s3(bucket, key, region=region, access_key=access_key, secret_key=secret_key)
        return data, kind_of(key)
    data = fetch_http(url)
    return data, "csv" if _SHEET.match(urlsplit(url).path) else kind_of(urlsplit(url).path)
