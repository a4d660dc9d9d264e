"""The HTTP API process: routes and schemas (``app``), the delivery-report intake (``dlr``) and
``/metrics`` (``metrics``). It stores and enqueues through the producer client and the task
contract; it imports nothing of the worker."""
