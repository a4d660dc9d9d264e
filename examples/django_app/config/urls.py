from django.urls import include, path

urlpatterns = [path("otp/", include("otp.urls"))]
