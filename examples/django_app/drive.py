"""Drive the example through Django's test client, one JSON command per line on stdin.

Each line is ``{"method": "get"|"post", "path": "/otp/", "json": {...}}`` and is answered
with ``{"status": 202, "body": {...}, "headers": {...}}``; ``{"method": "imports"}`` reports
where ``config`` and ``otpflow.config`` come from. Used by the integration test, which runs
it in its own process with the example as the working directory.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.test import Client  # noqa: E402


def imports() -> dict:
    import config
    import config.settings
    import otpflow.config
    import otpflow.config.settings

    return {
        "config": os.path.abspath(config.__file__),
        "config_settings_has_otpflow": hasattr(config.settings, "OTPFLOW"),
        "otpflow_config": os.path.abspath(otpflow.config.__file__),
        "otpflow_settings_has_Settings": hasattr(otpflow.config.settings, "Settings"),
    }


def main() -> None:
    client = Client()
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["method"] == "imports":
            answer = imports()
        else:
            call = getattr(client, command["method"])
            kwargs = {}
            if "json" in command:
                kwargs = {"data": json.dumps(command["json"]), "content_type": "application/json"}
            response = call(command["path"], **kwargs)
            answer = {
                "status": response.status_code,
                "body": json.loads(response.content or b"null"),
                "headers": dict(response.headers),
            }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
