"""The operator's room: the ``otpflow`` command (``main``), the demo, the local stack launcher
and the timeline rendering. It may import every other room."""
