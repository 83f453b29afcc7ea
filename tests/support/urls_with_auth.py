"""A project's URLconf that has Django's own auth URLs beside the concierge's."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("fileshare.urls")),
]
