"""URLs of the fileshare app; include them at the site root (``path("", include(...))``)."""

from __future__ import annotations

from django.urls import path, re_path, register_converter

from fileshare import admit_view, dashboard_views, tus_views, views
from fileshare.converters import AnyPathConverter

register_converter(AnyPathConverter, "anypath")

app_name = "fileshare"

urlpatterns = [
    # pw_file listings and published files (docs/pw_file.md); before the generic routes.
    path("fs/", views.root_view, name="root"),
    path("fs/_published/<str:name>", views.published_file_view, name="published"),
    path("fs/<str:client_name>/", views.folder_view, name="folder"),
    path("fs/<str:client_name>/<anypath:dir_path>/", views.directory_view, name="directory"),
    path("fs/<str:client_name>/<anypath:file_path>", views.file_view, name="file"),
    # The operator dashboard (staff only; see fileshare/dashboard_views.py).
    path("dashboard/", dashboard_views.page, name="dashboard"),
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
    # nginx's auth_request asks here before it reads an upload's body (deploy/nginx.conf).
    path("_concierge/admit", admit_view.admit, name="admit"),
]
