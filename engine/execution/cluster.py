"""Whether a Ray cluster's address can be used, checked in a second or two before anything
starts: it answers (`ray.init` would retry an unreachable address for minutes) and it accepts
this process's token (docs/CLUSTER.md, "Token authentication")."""
from engine.execution.errors import RunSettingsError

CONNECT_TIMEOUT = 10.0  # seconds to reach a cluster's address before giving up


class RayUnreachableError(RunSettingsError):
    """The Ray address does not answer (reported like a bad argument: exit code 2)."""


def check_cluster(address: str) -> None:
    """Fail in one line when a cluster's address does not answer or refuses this process's token."""
    _check_reachable(address)
    _check_token(address)


def _check_reachable(address: str) -> None:
    """Open a TCP connection to the cluster's address (host:port, or ray://host:port) within
    CONNECT_TIMEOUT seconds; Ray itself would retry an unreachable address for minutes."""
    import socket

    if address == "auto" or address.startswith("local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        if not 0 < int(port) < 65536:
            raise OverflowError
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError, OverflowError) as exc:
        reason = ("not host:port" if isinstance(exc, ValueError) else "port out of range"
                  if isinstance(exc, OverflowError) else exc.strerror or str(exc) or "timed out")
        raise RayUnreachableError(f"cannot reach the Ray cluster at {address!r} ({reason}); check "
                                  "--ray-address or RAY_ADDRESS (host:port of the head node)") from None


AUTH_HELP = ("set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN or in the file "
             "RAY_AUTH_TOKEN_PATH names (default ~/.ray/auth_token) (docs/CLUSTER.md, \"Token authentication\")")


def _check_token(address: str) -> None:
    """Ask the cluster's GCS for its id, as Ray would first, with the token this process would send
    (none unless RAY_AUTH_MODE=token): a head with token authentication (Ray 2.60's default)
    refuses at once, where `ray.init` retries for 20 s, logging each refusal, then blames the
    address. Anything but a refusal is left to `ray.init`."""
    if address == "auto" or address.startswith(("local", "ray://")):
        return
    import grpc
    from ray._private.authentication.grpc_authentication_client_interceptor import (
        _get_authentication_metadata_tuple,
    )

    metadata = _get_authentication_metadata_tuple()
    with grpc.insecure_channel(address) as channel:
        ask = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            ask(b"", timeout=CONNECT_TIMEOUT, metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                what = ("rejected this process's token" if metadata else
                        "requires a token (token authentication) and this process has none")
                raise RayUnreachableError(f"the Ray cluster at {address!r} {what}: {AUTH_HELP}") from None
