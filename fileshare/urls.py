"""URLs of the fileshare app; include them at the site root (``path("", include(...))``)."""

from __future__ import annotations

from django.urls import path, register_converter

from fileshare import views
from fileshare.converters import AnyPathConverter

register_converter(AnyPathConverter, "anypath")

app_name = "fileshare"

urlpatterns = [
    path("fs/<str:client_name>/", views.folder_view, name="folder"),
    path("fs/<str:client_name>/<anypath:file_path>", views.file_view, name="file"),
]
