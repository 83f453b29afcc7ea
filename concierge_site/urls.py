from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # This site's short login and logout URLs (the app's own are /dashboard/login/ and
    # /dashboard/logout/); the page is the app's (fileshare/templates/fileshare/login.html).
    # Logout is a POST. Static files are served by fileshare.urls (STATIC_URL).
    path("login/", auth_views.LoginView.as_view(template_name="fileshare/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", RedirectView.as_view(pattern_name="fileshare:dashboard"), name="home"),
    path("", include("fileshare.urls")),
]
