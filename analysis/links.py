"""Addresses in the MLflow UI that open the runs view (not the GenAI overview) of an experiment or run."""

from urllib.parse import urlparse


def server_address(tracking_uri: str | None) -> str | None:
    """The UI's base address for an http(s) tracking URI, else None (local stores have no UI address)."""
    if not tracking_uri or urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    return tracking_uri.rstrip("/")


def experiment_url(tracking_uri: str | None, experiment_id: str) -> str | None:
    """`{server}/#/experiments/{ID}/runs?workflowType=machine_learning`, or None."""
    server = server_address(tracking_uri)
    return f"{server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning" if server else None


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str | None:
    """`{server}/#/experiments/{ID}/runs/{RUN_ID}`, or None."""
    server = server_address(tracking_uri)
    return f"{server}/#/experiments/{experiment_id}/runs/{run_id}" if server else None
