from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from fileshare.dashboard import views as dashboard_views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Operator login for the dashboard (templates/registration/login.html); logout is a POST.
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Static files (the dashboard's and the admin's), since daphne serves none:
    # found in the apps' static folders, no collectstatic (docs/dashboard.md).
    path("static/<path:path>", dashboard_views.static_file, name="static"),
    path("", RedirectView.as_view(pattern_name="fileshare:dashboard"), name="home"),
    path("", include("fileshare.urls")),
]
