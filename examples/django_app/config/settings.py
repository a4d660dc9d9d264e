"""Settings of the OTPflow Django example: no database, a JSON API, OTPflow from the env."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["otp"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "config.urls"
DATABASES: dict = {}
USE_TZ = True

# Read by otpflow.producers.django; keys may be in any case, nested as in OTPflow's settings.
OTPFLOW = {
    "REDIS_URL": os.environ.get("OTPFLOW_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "BROKER_URL": os.environ.get("OTPFLOW_BROKER_URL", ""),  # empty: the Redis above
}
