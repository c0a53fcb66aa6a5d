from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.web import api, metrics_view, views
from chat.web.signin_throttle import throttle_sign_in

urlpatterns = [
    path("healthz", api.healthz, name="healthz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", throttle_sign_in(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", throttle_sign_in(views.signup), name="signup"),
    path("", include("chat.web.urls")),
]
