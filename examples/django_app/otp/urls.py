from django.urls import path

from . import views

urlpatterns = [
    path("", views.start, name="otp-start"),
    path("<str:request_id>/", views.status, name="otp-status"),
    path("<str:request_id>/verify/", views.verify, name="otp-verify"),
]
