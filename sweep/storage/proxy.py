"""`sweep proxy`: Optuna's gRPC storage proxy, plus one call Optuna's lacks.

A trial records about twenty user attributes. Directly on the database they go in one
transaction (``BudgetedStorage.set_trial_user_attrs``); Optuna's proxy API sets one
attribute per request, so through `sweep proxy` a trial cost twenty round trips and twenty
transactions, about a third of the proxy's Python time with 8 workers. ``sweep proxy``
also serves ``/sweep.Storage/SetTrialUserAttributes`` (a JSON body: the trial and its
attributes), and :class:`ProxyStorage`, the client every ``grpc://`` storage URL opens,
sends a trial's attributes through it in one request. Against a proxy without it (Optuna's
own ``optuna`` proxy, an older `sweep proxy`) the client falls back to one request per
attribute.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import optuna

__all__ = ["BATCH_METHOD", "ProxyStorage", "batch_handler", "serve"]

SERVICE = "sweep.Storage"
BATCH_METHOD = f"/{SERVICE}/SetTrialUserAttributes"


class ProxyStorage(optuna.storages.GrpcStorageProxy):
    """Optuna's proxy client, with :meth:`set_trial_user_attrs`."""

    _batched: bool | None = None  # False once the proxy has said it lacks the call

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes of one trial in one request (one transaction there)."""
        import grpc
        from optuna.exceptions import UpdateFinishedTrialError

        if self._batched is not False:
            call = self._channel.unary_unary(BATCH_METHOD)
            body = json.dumps({"trial_id": trial_id, "attrs": attrs}).encode()
            try:
                call(body)
                self._batched = True
                return
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    raise KeyError(error.details()) from None
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    raise UpdateFinishedTrialError(error.details()) from None
                if code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._batched = False
        for key, value in attrs.items():
            self.set_trial_user_attr(trial_id, key, value)


def batch_handler(storage: Any) -> Any:
    """The gRPC handler of :data:`BATCH_METHOD` over ``storage`` (the proxy's cached
    storage, whose ``BudgetedStorage`` writes the attributes in one transaction)."""
    import grpc
    from optuna.exceptions import UpdateFinishedTrialError

    from sweep.storage.budget import budgeted_backend

    backend = budgeted_backend(storage)

    def set_attrs(request: bytes, context: Any) -> bytes:
        body = json.loads(request)
        trial_id, attrs = int(body["trial_id"]), dict(body["attrs"])
        try:
            if backend is not None:
                backend.set_trial_user_attrs(trial_id, attrs)
            else:
                for key, value in attrs.items():
                    storage.set_trial_user_attr(trial_id, key, value)
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except UpdateFinishedTrialError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return b""

    # Bytes in and out (no serializers): the body is JSON, as Optuna's attribute values.
    return grpc.method_handlers_generic_handler(
        SERVICE, {"SetTrialUserAttributes": grpc.unary_unary_rpc_method_handler(set_attrs)})


def serve(storage: Any, host: str, port: int, threads: int) -> None:
    """Serve ``storage`` until interrupted: Optuna's proxy service and :data:`BATCH_METHOD`.
    What ``optuna.storages.run_grpc_proxy_server`` does, with one more handler added before
    the server starts (its ``make_server`` is where Optuna builds that server)."""
    from sweep.storage import optuna_internals as internals

    server = internals.grpc_server(storage, host, port, ThreadPoolExecutor(max_workers=threads))
    server.add_generic_rpc_handlers((batch_handler(storage),))
    server.start()
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=None)
