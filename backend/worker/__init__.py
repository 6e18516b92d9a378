"""The backend as a long-lived worker process: ``python -m backend serve`` (docs/worker-protocol.md).

Modules: ``messages`` (the protocol's dataclasses and their JSON form, stdlib only, so Blender can import
it), ``transport`` (JSON lines over stdin/stdout), ``backend_calls`` (the one adapter onto
``backend.api``), ``serve`` (the loop), ``client`` (starts a worker and reads its events; stdlib only).
"""
