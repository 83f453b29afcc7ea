"""URLs of the fileshare app; include them at the site root (``path("", include(...))``)."""

from __future__ import annotations

from django.urls import path

from fileshare import views

app_name = "fileshare"

urlpatterns = [
    path("fs/<str:client_name>/", views.folder_view, name="folder"),
    path("fs/<str:client_name>/<path:file_path>", views.file_view, name="file"),
]
