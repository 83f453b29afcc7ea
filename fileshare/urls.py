"""URLs of the fileshare app; include them at the site root (``path("", include(...))``)."""

from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, path, re_path, register_converter

from fileshare.dashboard import login_views
from fileshare.dashboard import views as dashboard_views
from fileshare.fileapi import admit_view, views
from fileshare.fileapi.converters import AnyPathConverter
from fileshare.observe import health_views
from fileshare.observe.endpoint import metrics_view
from fileshare.tus import views as tus_views

register_converter(AnyPathConverter, "anypath")

app_name = "fileshare"


def static_patterns() -> list[URLPattern]:
    """``STATIC_URL`` served by the app (daphne serves no static files; docs/install.md).

    Only when ``STATIC_URL`` is a path on this site (``static/``, ``/static/``), not a
    URL on another host (a CDN, an nginx location serves those)."""
    prefix = str(getattr(settings, "STATIC_URL", None) or "")
    if not prefix or "://" in prefix or prefix.startswith("//"):
        return []
    prefix = prefix.strip("/")
    return [path(f"{prefix}/<path:path>", dashboard_views.static_file, name="static")]


urlpatterns = [
    # pw_file listings and published files (docs/pw_file.md); before the generic routes.
    path("fs/", views.root_view, name="root"),
    path("fs/_published/<str:name>", views.published_file_view, name="published"),
    path("fs/<str:client_name>/", views.folder_view, name="folder"),
    path("fs/<str:client_name>/<anypath:dir_path>/", views.directory_view, name="directory"),
    path("fs/<str:client_name>/<anypath:file_path>", views.file_view, name="file"),
    re_path(r"^fs/", views.unknown_route_view, name="fs-unknown"),  # the JSON 404, not Django's HTML
    # The operator dashboard (staff only; see fileshare/dashboard/views.py), its login and logout.
    path("dashboard/", dashboard_views.page, name="dashboard"),
    path("dashboard/login/", login_views.LoginView.as_view(), name="login"),
    path("dashboard/logout/", login_views.LogoutView.as_view(), name="logout"),
    path("dashboard/api/clients", dashboard_views.clients, name="dashboard-clients"),
    path("dashboard/api/clients/<str:client_name>/files", dashboard_views.client_files, name="dashboard-files"),
    path("dashboard/api/services", dashboard_views.services, name="dashboard-services"),
    path("dashboard/files/<str:client_name>/<anypath:file_path>", dashboard_views.download, name="dashboard-download"),
    path("dashboard/actions/delete-file", dashboard_views.delete_file, name="dashboard-delete-file"),
    path("dashboard/actions/disconnect", dashboard_views.disconnect, name="dashboard-disconnect"),
    # Resumable uploads, tus 1.0 (docs/resumable.md): outside /fs/, so no file path collides.
    re_path(r"^tus/?$", tus_views.discovery_view, name="tus"),
    re_path(r"^tus/(?P<client_name>[^/]+)/?$", tus_views.creation_view, name="tus-create"),
    path("tus/<str:client_name>/<str:upload_id>", tus_views.upload_view, name="tus-upload"),
    re_path(r"^tus/", views.unknown_route_view, name="tus-unknown"),
    # Prometheus metrics (docs/metrics.md): loopback, or FILESHARE_METRICS_TOKEN.
    path("metrics", metrics_view, name="metrics"),
    # Health and the HTTP API's description (docs/health.md, docs/http-api.md): no key needed.
    path("healthz", health_views.liveness, name="healthz"),
    path("readyz", health_views.readiness, name="readyz"),
    path("openapi.json", health_views.openapi, name="openapi"),
    *static_patterns(),
    # nginx's auth_request asks here before it reads an upload's body (deploy/nginx.conf).
    path("_concierge/admit", admit_view.admit, name="admit"),
]
